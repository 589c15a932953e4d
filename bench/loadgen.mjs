// @ts-check
/**
 * The load generator: a separate process (forked by the harness) that drives one server with
 * autocannon. Every connection chains refresh tokens: each request presents the token the previous
 * answer on that connection returned, so every request is a real rotation. Every answer is checked:
 * the status, a token in the body, a token different from the one presented and never seen before.
 *
 * Chaining through autocannon: within one connection, autocannon calls `onResponse` for an answer and
 * then, synchronously, `setupRequest` for that connection's next request. The answer's new state is
 * handed over through `handoff`; a connection whose answer failed the checks (or that timed out) takes
 * an unused token from the spare pool instead, so one failure never cascades into a revoked chain.
 *
 * Protocol: the parent sends `{type:'run', config}`; this process answers `{type:'phase', name}` when
 * a phase starts and `{type:'result', result}` at the end.
 */
import autocannon from 'autocannon';
import { signed } from './dpop.mjs';
import { protocol } from './protocols.mjs';

/**
 * @typedef {import('./protocols.mjs').TokenState} TokenState
 * @typedef {{ name: string, seconds: number, states: TokenState[] }} Phase
 * @typedef {{ url: string, protocol: string, setup: import('./protocols.mjs').Setup, connections: number,
 *   phases: Phase[], timeoutSeconds?: number }} LoadConfig
 * @typedef {{ name: string, seconds: number, ok: number, errors: number, reasons: Record<string, number>,
 *   refreshPerSecond: number, p50: number, p90: number, p99: number, max: number, requests: number,
 *   timeouts: number, connErrors: number, generatorCpuUsPerRequest: number, generatorCores: number,
 *   proofsSignedLive: number }} PhaseResult
 */

/** A state that no server accepts: what a connection presents once the spare pool is exhausted. */
const EXHAUSTED = Object.freeze({ refresh: 'exhausted', access: 'exhausted' });

/**
 * Runs one phase: `states` holds the connections' first tokens, then spares.
 * @param {LoadConfig} config @param {Phase} phase @param {Set<string>} seen
 * @returns {Promise<PhaseResult>}
 */
export async function runPhase(config, phase, seen) {
  const proto = protocol(config.protocol);
  const pool = phase.states.slice();
  /** @type {TokenState | null} */
  let handoff = null;
  let ok = 0;
  /** @type {Record<string, number>} */
  const reasons = {};
  const fail = (/** @type {string} */ reason) => {
    reasons[reason] = (reasons[reason] ?? 0) + 1;
  };

  const instance = autocannon({
    url: config.url,
    connections: config.connections,
    duration: phase.seconds,
    pipelining: 1,
    timeout: config.timeoutSeconds ?? 10,
    requests: [{
      setupRequest(req, context) {
        const state = handoff ?? pool.shift() ?? EXHAUSTED;
        handoff = null;
        /** @type {any} */ (context).state = state;
        const call = proto.request(state, config.setup);
        return { ...req, method: /** @type {any} */ (call.method), path: call.path, headers: call.headers, body: call.body ?? '' };
      },
      onResponse(status, body, context) {
        /** @type {TokenState} */
        const presented = /** @type {any} */ (context).state ?? {};
        handoff = null;
        try {
          let json;
          try {
            json = body ? JSON.parse(body) : undefined;
          } catch {
            if (status !== 200) throw `status ${status}`;
            throw 'the body is not JSON';
          }
          const next = proto.next(status, json, presented);
          const key = proto.key(next);
          if (key === undefined) throw 'no token in the answer';
          if (key === proto.key(presented)) throw 'the presented token came back';
          if (seen.has(key)) throw 'a token seen before came back (duplicate)';
          seen.add(key);
          ok += 1;
          handoff = next;
        } catch (reason) {
          fail(typeof reason === 'string' ? reason : String(reason));
        }
      },
    }],
  });
  const cpuAtStart = process.cpuUsage();
  const liveAtStart = signed.live;
  let connErrors = 0;
  instance.on('reqError', () => {
    connErrors += 1;
  });
  const result = await /** @type {Promise<autocannon.Result>} */ (/** @type {unknown} */ (instance));
  const cpu = process.cpuUsage(cpuAtStart);
  const errors = Object.values(reasons).reduce((a, b) => a + b, 0) + result.timeouts;
  if (result.timeouts > 0) reasons.timeout = (reasons.timeout ?? 0) + result.timeouts;
  const seconds = result.duration > 0 ? result.duration : phase.seconds;
  return {
    name: phase.name, seconds, ok, errors, reasons,
    refreshPerSecond: ok / seconds,
    p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max,
    requests: result.requests.total, timeouts: result.timeouts, connErrors,
    generatorCpuUsPerRequest: result.requests.total > 0 ? (cpu.user + cpu.system) / result.requests.total : 0,
    generatorCores: (cpu.user + cpu.system) / 1e6 / seconds,
    proofsSignedLive: signed.live - liveAtStart,
  };
}

/** @param {LoadConfig} config */
export async function runLoad(config, onPhase = (/** @type {string} */ _name) => {}) {
  const seen = new Set();
  /** @type {PhaseResult[]} */
  const phases = [];
  const proto = protocol(config.protocol);
  for (const phase of config.phases) {
    // Proofs for a phase after the first are signed before it starts (bench/dpop.mjs), for 2.5× the
    // rate the previous phase reached: each connection's first state, whose key its successors carry.
    const before = phases.at(-1);
    if (proto.signAhead && before && process.env.BENCH_DPOP_SIGN !== 'live') {
      const perState = Math.ceil((2.5 * before.refreshPerSecond * phase.seconds) / config.connections) + 10;
      proto.signAhead(phase.states.slice(0, config.connections), config.setup, perState);
    }
    onPhase(phase.name);
    phases.push(await runPhase(config, phase, seen));
  }
  return { phases, distinctTokens: seen.size };
}

if (process.send) {
  process.once('message', (/** @type {any} */ message) => {
    if (message?.type !== 'run') return;
    runLoad(message.config, (name) => process.send?.({ type: 'phase', name })).then(
      (result) => process.send?.({ type: 'result', result }, () => process.exit(0)),
      (err) => process.send?.({ type: 'error', message: String(err?.stack ?? err) }, () => process.exit(1)),
    );
  });
}
