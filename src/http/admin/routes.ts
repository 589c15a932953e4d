import type { FastifyInstance, FastifyRequest } from 'fastify';
import { constantTimeEqualText } from '../../crypto/secrets.js';
import { RotorError } from '../../domain/errors.js';
import type { Api } from '../api.js';
import { noStore } from '../reply.js';
import { authorizationCredential } from '../auth.js';
import { noFields, objectBody } from './body.js';
import { sendProblem } from '../reply.js';
import { ActivitySampler } from '../activity.js';
import { adminSessionView, appView, eventView, eventsQuery, signingKeyView, subjectListingView, subjectView } from './views.js';
import { acceptEmptyJsonBody } from '../empty_json.js';

type P = { app: string; id: string; kid: string; subject: string };

/**
 * Set on the admin API's fastify scope (and so on every plugin registered inside it): the scope whose
 * `onRequest` hook checks the admin token for every route it holds.
 */
const ADMIN_SCOPE = Symbol('rotor.adminScope');

/** A route pattern under /admin, in any letter case (the router is case-sensitive, people are not). */
const ADMIN_ROUTE = /^\/admin(?:\/|$)/i;

/**
 * S2-01 / N8, defence in depth: an admin route declared anywhere but inside the admin API's scope
 * (another API's scope, the root, a plugin) would not be behind the admin token check, so declaring
 * one fails the server's startup. Installed on the root instance before any API is registered.
 */
export function guardAdminRoutes(root: FastifyInstance): void {
  root.addHook('onRoute', function (this: FastifyInstance, route) {
    if (ADMIN_ROUTE.test(route.url) && (this as unknown as Record<symbol, unknown>)[ADMIN_SCOPE] !== true) {
      throw new Error(`${String(route.method)} ${route.url} is an admin route declared outside the admin API's scope, where nothing checks the admin token (SPEC N8)`);
    }
  });
}

/**
 * SPEC §4.3: management API behind ROTOR_ADMIN_TOKEN. Registered only when the token is set.
 *
 * Authorization is a property of the routes, not of the URL (S2-01): the token is checked by an
 * `onRequest` hook of this API's own encapsulated scope (`registerApi`), which fastify runs for
 * every route of the scope and for nothing else — whatever spelling of the request target the router
 * matched (percent-encoding, absolute form, a query), the check runs before the body is even read.
 */
export const adminApi: Api = {
  name: 'admin',
  renderError: (err, _request, reply) => sendProblem(reply, err),
  routes(app, ctx) {
    const { rotor } = ctx;
    const adminToken = ctx.config.adminToken;
    if (adminToken === null) return;

    app.decorate(ADMIN_SCOPE, true);
    // `curl -X POST -H 'Content-Type: application/json'` on a call that takes no body is no body.
    acceptEmptyJsonBody(app, undefined);
    app.addHook('onRequest', async (request: FastifyRequest) => {
      const presented = authorizationCredential(request, 'Bearer');
      if (!presented || !constantTimeEqualText(presented, adminToken)) {
        throw new RotorError('unauthorized', 'send the admin token as Authorization: Bearer <ROTOR_ADMIN_TOKEN>');
      }
    });
    // Data, never a page: not cached, not sniffed into HTML, and a document that could run nothing.
    app.addHook('onSend', async (_request, reply) => {
      reply.header('Cache-Control', 'no-store').header('X-Content-Type-Options', 'nosniff')
        .header('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    });

    const params = (request: FastifyRequest) => request.params as P;

    // Bodies go to the domain whole: it refuses any field it does not know, so a typo is never dropped here.
    app.post('/admin/apps', async (request, reply) => {
      const { app: created, appKey } = await rotor.apps.create(objectBody(request));
      return noStore(reply).code(201).send({ id: created.id, name: created.name, profile: created.profile, appKey, policy: created.policy });
    });
    app.get('/admin/apps', async () => ({ apps: (await rotor.apps.list()).map(appView) }));
    app.get('/admin/apps/:app', async (request) => appView(await rotor.apps.get(params(request).app)));
    app.patch('/admin/apps/:app', async (request) => appView(await rotor.apps.update(params(request).app, objectBody(request))));
    app.delete('/admin/apps/:app', async (request, reply) => {
      await rotor.apps.delete(params(request).app);
      return reply.code(204).send();
    });

    app.post('/admin/apps/:app/app-keys', async (request, reply) => {
      noFields(request);
      return reply.code(201).send(await rotor.apps.createAppKey(params(request).app));
    });
    app.delete('/admin/apps/:app/app-keys/:id', async (request, reply) => {
      await rotor.apps.revokeAppKey(params(request).app, params(request).id);
      return reply.code(204).send();
    });

    app.get('/admin/apps/:app/keys', async (request) => ({
      keys: (await rotor.apps.listKeys(params(request).app)).map((k) => signingKeyView(k, rotor.clock.now())),
    }));
    app.post('/admin/apps/:app/keys/rotate', async (request) => {
      noFields(request);
      return signingKeyView(await rotor.apps.rotateKey(params(request).app), rotor.clock.now());
    });
    app.post('/admin/apps/:app/keys/:kid/revoke', async (request) => {
      noFields(request);
      await rotor.apps.revokeKey(params(request).app, params(request).kid);
      return { revoked: true };
    });

    app.put('/admin/apps/:app/subjects/:subject', async (request) => {
      const body = objectBody(request);
      const target = await rotor.apps.get(params(request).app);
      return subjectView(await rotor.subjects.put(target, params(request).subject, body));
    });
    app.get('/admin/apps/:app/subjects/:subject', async (request) => {
      const target = await rotor.apps.get(params(request).app);
      return subjectView(await rotor.subjects.get(target, params(request).subject));
    });
    app.delete('/admin/apps/:app/subjects/:subject', async (request, reply) => {
      const target = await rotor.apps.get(params(request).app);
      await rotor.subjects.delete(target, params(request).subject);
      return reply.code(204).send();
    });

    // ── what the console shows: subjects, sessions, events, activity (SPEC §4.3) ──────────────────

    const query = (request: FastifyRequest) => request.query as Record<string, unknown>;

    app.get('/admin/apps/:app/subjects', async (request) => {
      const target = await rotor.apps.get(params(request).app);
      const page = await rotor.subjectsPage(target, { cursor: query(request).cursor, limit: query(request).limit });
      return { subjects: page.subjects.map(subjectListingView), next: page.next };
    });
    app.get('/admin/apps/:app/sessions', async (request) => {
      const target = await rotor.apps.get(params(request).app);
      const q = query(request);
      const page = await rotor.sessionsPage(target, { subject: q.subject, cursor: q.cursor, limit: q.limit });
      return { sessions: page.sessions.map((s) => adminSessionView(s, rotor.sessionState(target, s))), next: page.next };
    });
    app.delete('/admin/apps/:app/sessions/:id', async (request, reply) => {
      const target = await rotor.apps.get(params(request).app);
      await rotor.revokeSessionOf(target, params(request).id);
      return reply.code(204).send();
    });
    app.delete('/admin/apps/:app/subjects/:subject/sessions', async (request) => {
      const target = await rotor.apps.get(params(request).app);
      return { revoked: await rotor.revokeSubjectSessions(target, params(request).subject) };
    });

    app.get('/admin/events', async (request) => {
      const q = eventsQuery(query(request));
      const events = await rotor.events.list(q);
      const last = events.at(-1);
      return { events: events.map(eventView), next: last ? String(last.id) : q.afterId === null ? null : String(q.afterId) };
    });

    // Samples are taken once the server is ready (not while its routes are merely being listed).
    const sampler = new ActivitySampler(ctx.metrics, rotor.activity, rotor.clock);
    app.addHook('onReady', async () => { await sampler.start(); });
    app.addHook('onClose', async () => { sampler.stop(); });
    app.get('/admin/stats', async () => sampler.series());
  },
};
