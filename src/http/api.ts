import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorKind, RotorError } from '../domain/errors.js';
import type { Rotor } from '../domain/rotor.js';
import type { Config } from '../config.js';
import type { Metrics } from './observability.js';
import { invalidRequest } from '../domain/errors.js';
import { hasIllFormedText } from '../domain/text.js';
import { isServerFault, toRotorError } from './errors.js';
import type { RouteApis } from './route_apis.js';

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

/**
 * Requests answered server_busy: counted, and logged as one summary line per 10 s rather than a line each
 * (a flood would otherwise write a log line per refused request).
 */
export const answeredBusy = new WeakSet<FastifyRequest>();
/**
 * The kind of error each refused request of an API was answered with (the rate limiter tells failed
 * guesses from other refusals by it: a page on any site can make its visitors' browsers send
 * cross-origin requests that are refused for their origin or their shape, and those must not lock the
 * visitors out).
 */
export const refusalKinds = new WeakMap<FastifyRequest, ErrorKind>();
const BUSY_LOG_EVERY_MS = 10_000;
let busySinceLog = 0;
let busyLoggedAt = 0;

function noteBusy(request: FastifyRequest, ctx: ApiContext): void {
  answeredBusy.add(request);
  ctx.metrics.busyRefusals.inc();
  busySinceLog += 1;
  const now = Date.now();
  if (now - busyLoggedAt < BUSY_LOG_EVERY_MS) return;
  request.log.warn({ event: 'server_busy', refused: busySinceLog }, 'requests answered server_busy (DPoP proofs waiting past the limit, or too many requests pipelined on one connection)');
  busyLoggedAt = now;
  busySinceLog = 0;
}

export function registerApi(app: FastifyInstance, api: Api, ctx: ApiContext, routeApis?: RouteApis): void {
  app.register(async (scope) => {
    routeApis?.track(scope, api);
    scope.setErrorHandler((raw, request, reply) => {
      const err = toRotorError(raw);
      if (isServerFault(err)) request.log.error({ err: raw }, 'request failed');
      if (err.code === 'store_unavailable') ctx.metrics.storeErrors.inc();
      if (err.code === 'server_busy') noteBusy(request, ctx);
      refusalKinds.set(request, err.kind);
      if (err.retryAfter !== undefined) reply.header('Retry-After', String(err.retryAfter));
      for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
      return api.renderError(err, request, reply);
    });
    // A lone UTF-16 surrogate is no text (domain/text.ts). The domain refuses it in everything it stores;
    // this refuses it anywhere in a body, before any route runs, so also in what the domain never keeps
    // as text (a refresh token, a login's username and password, a dialect's own fields), in one answer.
    scope.addHook('preValidation', async (request) => {
      if (hasIllFormedText(request.body)) throw invalidRequest('text must be well-formed Unicode (a lone surrogate is not)');
    });
    api.routes(scope, ctx);
  });
}

export { noStore } from './reply.js';
export { clientOf } from './client_context.js';
