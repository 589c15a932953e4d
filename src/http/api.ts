import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { callerClient, recordableClient, type ClientValues } from '../domain/claims.js';
import type { RotorError } from '../domain/errors.js';
import type { Rotor } from '../domain/rotor.js';
import type { Config } from '../config.js';
import type { Metrics } from './observability.js';
import { isServerFault, toRotorError } from './errors.js';

/** What every API module (native, OAuth, admin, each dialect) is handed. */
export interface ApiContext {
  rotor: Rotor;
  config: Config;
  metrics: Metrics;
}

/**
 * One API: its routes and how it writes a catalogue error in its own envelope.
 * Every API and dialect has this same shape, registered by `registerApi`.
 */
export interface Api {
  name: string;
  routes(app: FastifyInstance, ctx: ApiContext): void;
  renderError(err: RotorError, request: FastifyRequest, reply: FastifyReply): unknown;
}

export function registerApi(app: FastifyInstance, api: Api, ctx: ApiContext): void {
  app.register(async (scope) => {
    scope.setErrorHandler((raw, request, reply) => {
      const err = toRotorError(raw);
      if (isServerFault(err)) request.log.error({ err: raw }, 'request failed');
      if (err.kind === 'unavailable') ctx.metrics.storeErrors.inc();
      if (err.retryAfter !== undefined) reply.header('Retry-After', String(err.retryAfter));
      for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
      return api.renderError(err, request, reply);
    });
    api.routes(scope, ctx);
  });
}

/** Token responses must never be cached (RFC 6749 §5.1). */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

/**
 * The client's address and user agent (SPEC §2.4): the connection's, or those a caller holding the
 * app key names in the body (`ip`, `userAgent`; validated). An unauthenticated caller can never set
 * them: its body values are ignored (S2-06).
 */
export function clientOf(request: FastifyRequest, body: Record<string, unknown>, callerHasAppKey: boolean): ClientValues {
  const connection = recordableClient({ ip: request.ip, userAgent: request.headers['user-agent'] });
  if (!callerHasAppKey) return connection;
  const named = callerClient(body.ip, body.userAgent);
  return { ip: named.ip ?? connection.ip, userAgent: named.userAgent ?? connection.userAgent };
}
