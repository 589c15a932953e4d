import type { FastifyInstance } from 'fastify';

/**
 * In `app`'s scope a JSON request with an empty body (`Content-Type: application/json`, no bytes) is read
 * as `empty` instead of fastify's "the request body is empty" 400: many clients send the header on every
 * call, calls that take no body included. Anything else goes through fastify's own, poisoning-safe parser.
 */
export function acceptEmptyJsonBody(app: FastifyInstance, empty: unknown): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, empty);
    else json(request, body as string, done);
  });
}
