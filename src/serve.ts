import cluster from 'node:cluster';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { databaseTarget, loadConfig, type Config } from './config.js';
import type { Rotor } from './domain/rotor.js';
import { Metrics, observerFor } from './http/observability.js';
import { buildServer, createLogger } from './http/server.js';
import { WebhookSink } from './http/webhook.js';
import { openRotor } from './runtime.js';
import { dialectHttps } from './dialects/index.js';
import { wideModes } from './store/sqlite/file_modes.js';

const PRUNE_EVERY_MS = 60_000;

export interface RunningServer {
  app: FastifyInstance;
  rotor: Rotor;
  url: string;
  close(): Promise<void>;
}

/** Starts one HTTP server on the configured store; prunes periodically. */
export async function startServer(config: Config = loadConfig()): Promise<RunningServer> {
  const logger = createLogger(config.logLevel);
  const metrics = new Metrics();
  const webhook = config.webhookUrl ? new WebhookSink({ url: config.webhookUrl, secret: config.webhookSecret }, logger) : undefined;
  const { rotor } = await openRotor({ config, observer: observerFor(metrics, logger, webhook), logger });
  warnAboutWideModes(config, logger);
  const app = buildServer({ rotor, config, metrics, logger, dialects: dialectHttps() });
  const prune = async () => {
    try {
      const pruned = await rotor.prune(config.revokedRetention);
      if (pruned.refreshTokens + pruned.sessions > 0) logger.info({ event: 'pruned', ...pruned }, 'pruned dead rows');
    } catch (err) {
      logger.warn({ err }, 'pruning failed; will retry');
    }
  };
  const timer = setInterval(prune, PRUNE_EVERY_MS);
  timer.unref();
  await prune();
  const url = await app.listen({ host: config.host, port: config.port });
  logger.info({ event: 'listening', url, store: rotor.storeKind }, `rotor listening on ${url}`);
  return {
    app, rotor, url,
    async close() {
      clearInterval(timer);
      await app.close();
      await rotor.events.flushed();
      await rotor.close();
    },
  };
}

/**
 * S2-07: one warning line per data directory, database, -wal or -shm file that group or others may
 * access, naming it and the chmod that fixes it. Rotor creates them private; existing ones it does not
 * change (an operator may have chosen group access). Logged once: by the only process, or by the
 * first worker.
 */
export function warnAboutWideModes(config: Config, logger: Logger): void {
  const target = databaseTarget(config.databaseUrl);
  if (target.kind !== 'sqlite' || target.path === ':memory:') return;
  if (cluster.isWorker && cluster.worker?.id !== 1) return;
  for (const wide of wideModes(target.path)) {
    logger.warn({ event: 'file_mode_too_wide', path: wide.path, mode: wide.mode.toString(8).padStart(4, '0'), fix: wide.fix }, wide.message);
  }
}

/** `rotor serve`: one process, or ROTOR_WORKERS processes sharing the port (node:cluster). */
export async function serve(): Promise<void> {
  const config = loadConfig();
  if (config.workers > 1 && cluster.isPrimary) {
    // Migrate once before forking so workers never race on the schema.
    const { rotor } = await openRotor({ config });
    await rotor.close();
    // Workers alive, by our own count: cluster.workers drops a worker only at the later of its exit and
    // disconnect, so it can still list the last one when its exit arrives.
    const alive = new Set<number>();
    const fork = () => alive.add(cluster.fork().id);
    for (let i = 0; i < config.workers; i += 1) fork();
    let stopping = false;
    // Until one worker listens, a worker's death is the service failing to start (a port in use, an
    // unreachable store): the primary stops with it, so a supervisor sees the failure, not a process
    // respawning workers forever with nothing listening.
    let started = false;
    cluster.on('listening', () => { started = true; });
    const stop = (code: number) => {
      if (stopping) return;
      stopping = true;
      process.exitCode = code; // however the primary ends from here, it ends with this status
      if (alive.size === 0) process.exit(code);
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
      setTimeout(() => process.exit(code), 5000).unref();
    };
    cluster.on('exit', (worker, code, signal) => {
      alive.delete(worker.id);
      if (stopping) {
        if (alive.size === 0) process.exit(process.exitCode ?? 0);
        return;
      }
      if (signal === 'SIGTERM' || code === 0) return;
      if (!started) {
        process.stderr.write(`rotor: worker ${worker.process.pid} could not start (${signal ?? code}; its error is above); stopping\n`);
        stop(1);
        return;
      }
      // Once serving, a worker that dies on its own is replaced, after a pause so that one that can no
      // longer start does not spin.
      process.stderr.write(`rotor: worker ${worker.process.pid} exited (${signal ?? code}); starting another\n`);
      setTimeout(() => { if (!stopping) fork(); }, 1000);
    });
    process.once('SIGTERM', () => stop(0));
    process.once('SIGINT', () => stop(0));
    return;
  }
  const server = await startServer(config);
  const stop = () => {
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
