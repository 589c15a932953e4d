import { RotorError } from '../../domain/errors.js';
import type { Api } from '../api.js';
import { sendProblem } from '../reply.js';
import { openApiDocument } from './openapi.js';

/** SPEC §4.5: liveness, readiness, metrics, and the OpenAPI document. */
export const opsApi: Api = {
  name: 'ops',
  renderError: (err, _request, reply) => sendProblem(reply, err),
  routes(app, ctx) {
    app.get('/healthz', async () => ({ status: 'ok' }));

    app.get('/readyz', async (_request, reply) => {
      try {
        await ctx.rotor.ping();
        return { status: 'ready' };
      } catch {
        return reply.code(503).header('Retry-After', '1').send({ status: 'unavailable', detail: 'the store does not answer' });
      }
    });

    app.get('/metrics', async (_request, reply) => {
      reply.header('Content-Type', ctx.metrics.registry.contentType);
      return ctx.metrics.registry.metrics();
    });

    app.get('/openapi.json', async () => openApiDocument(ctx.rotor.issuer));
  },
};

export const notFound = (): RotorError => new RotorError('not_found', 'no such endpoint; see /openapi.json');
