import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RotorError } from '../domain/errors.js';
import { toRotorError } from './errors.js';
import { sendProblem } from './reply.js';
import { notFound } from './ops/routes.js';
import type { RouteApis } from './route_apis.js';

/**
 * What Rotor answers outside its APIs' own scopes: 404 for an unknown path (native envelope), 405 with
 * `Allow` for a known path under another method (in the envelope of the API the path belongs to), and
 * any error raised before routing (a body
 * that failed to parse) as a catalogue error, 503s with `Retry-After`. The server and the library's
 * plugin both install it.
 */
export function registerFallbacks(scope: FastifyInstance, options: {
  allowedMethods: (request: FastifyRequest) => string[];
  notFound: boolean;
  /** The API a known path belongs to: its 405 comes in that API's envelope (native when none is known). */
  routeApis?: RouteApis;
}): void {
  if (options.notFound) {
    scope.setNotFoundHandler((request, reply) => {
      const allowed = options.allowedMethods(request);
      if (allowed.length === 0 || allowed.includes(request.method)) return sendProblem(reply, notFound());
      reply.header('Allow', allowed.join(', '));
      const err = new RotorError('method_not_allowed', `this endpoint answers ${allowed.join(', ')}`);
      const api = options.routeApis?.of(request);
      return api ? api.renderError(err, request, reply) : sendProblem(reply, err);
    });
  }
  scope.setErrorHandler((raw, request, reply) => {
    const err = toRotorError(raw);
    if (err.kind === 'internal') request.log.error({ err: raw }, 'request failed');
    if (err.kind === 'unavailable') reply.header('Retry-After', '1');
    return sendProblem(reply, err);
  });
}
