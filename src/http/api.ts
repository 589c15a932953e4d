import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

export { noStore } from './reply.js';
export { clientOf } from './client_context.js';
