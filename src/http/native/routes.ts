import type { FastifyRequest } from 'fastify';
import { RotorError } from '../../domain/errors.js';
import type { App } from '../../domain/types.js';
import type { Api, ApiContext } from '../api.js';
import { abandonedOf, clientOf } from '../client_context.js';
import { authorizationCredential, bodyOf, dpopInput } from '../auth.js';
import { noStore, sendProblem } from '../reply.js';
import { sessionView, tokenPair } from './token_pair.js';

type AppParams = { app: string };

/** The app named in the path, authenticated by the app key in `Authorization: Bearer`. */
async function authenticatedApp(ctx: ApiContext, request: FastifyRequest): Promise<App> {
  const app = await ctx.rotor.apps.get((request.params as AppParams).app);
  const key = authorizationCredential(request, 'Bearer');
  if (!key) throw new RotorError('invalid_app_key', 'send the app key as Authorization: Bearer <app key>');
  return ctx.rotor.apps.authenticate(key, app);
}

/** The app whose key is in `Authorization: Bearer` (no app in the path). */
async function appKeyHolder(ctx: ApiContext, request: FastifyRequest): Promise<App> {
  const key = authorizationCredential(request, 'Bearer');
  if (!key) throw new RotorError('invalid_app_key', 'send the app key as Authorization: Bearer <app key>');
  return ctx.rotor.apps.authenticate(key);
}

/** SPEC §4.1: Rotor's own API. */
export const nativeApi: Api = {
  name: 'native',
  renderError: (err, _request, reply) => sendProblem(reply, err),
  routes(app, ctx) {
    const { rotor } = ctx;

    app.post('/v1/apps/:app/sessions', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const body = bodyOf(request);
      const issued = await rotor.issueSession(target, {
        subject: body.subject, claims: body.claims, audience: body.audience, client: clientOf(request, body, true), dpopJkt: body.dpopJkt,
      });
      return noStore(reply).code(201).send(tokenPair(issued));
    });

    app.post('/v1/apps/:app/login', async (request, reply) => {
      const target = await rotor.apps.get((request.params as AppParams).app);
      const body = bodyOf(request);
      // A backend relaying a login may name its user's ip and user agent, with its app key; nobody else.
      const relayed = request.headers.authorization !== undefined && (await authenticatedApp(ctx, request)).id === target.id;
      const issued = await rotor.login(target, { username: body.username, password: body.password, client: clientOf(request, body, relayed) });
      return noStore(reply).send(tokenPair(issued));
    });

    app.post('/v1/refresh', async (request, reply) => {
      const body = bodyOf(request);
      if (typeof body.refreshToken !== 'string') throw new RotorError('invalid_request', 'refreshToken (a string) is required');
      // The app key is optional here; a presented one is always checked, and it alone lets the caller name
      // the client's ip and user agent and redeem a confidential app's tokens (SPEC §1, §2.4).
      const caller = request.headers.authorization === undefined ? undefined : await appKeyHolder(ctx, request);
      const issued = await rotor.refresh(body.refreshToken, {
        client: caller, clientAuthenticated: caller !== undefined, context: clientOf(request, body, caller !== undefined),
        dpop: dpopInput(request, ctx.config.issuer, '/v1/refresh'), abandoned: abandonedOf(request),
      });
      if (issued.dpopNonce) reply.header('DPoP-Nonce', issued.dpopNonce);
      return noStore(reply).send(tokenPair(issued));
    });

    app.post('/v1/revoke', async (request, reply) => {
      const body = bodyOf(request);
      if (typeof body.token !== 'string') throw new RotorError('invalid_request', 'token (a string) is required');
      await rotor.revokeToken(body.token);
      return noStore(reply).send({});
    });

    app.post('/v1/introspect', async (request, reply) => {
      const client = await appKeyHolder(ctx, request);
      const body = bodyOf(request);
      if (typeof body.token !== 'string') throw new RotorError('invalid_request', 'token (a string) is required');
      return noStore(reply).send(await rotor.introspect(body.token, client));
    });

    app.get('/v1/apps/:app/sessions', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const subject = (request.query as Record<string, unknown>).subject;
      if (typeof subject !== 'string') throw new RotorError('invalid_request', 'the query parameter subject is required');
      const sessions = await rotor.listSessions(target, subject);
      return noStore(reply).send({ sessions: sessions.map(sessionView) });
    });

    app.delete('/v1/apps/:app/sessions/:sessionId', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      await rotor.revokeSessionOf(target, (request.params as { sessionId: string }).sessionId);
      return reply.code(204).send();
    });

    app.delete('/v1/apps/:app/subjects/:subject/sessions', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const revoked = await rotor.revokeSubjectSessions(target, (request.params as { subject: string }).subject);
      return noStore(reply).send({ revoked });
    });

    app.get('/v1/apps/:app/jwks.json', async (request, reply) => {
      const target = await rotor.apps.get((request.params as AppParams).app);
      return reply.header('Cache-Control', 'public, max-age=60').send(await rotor.jwks(target));
    });

    app.get('/.well-known/jwks.json', async (_request, reply) => {
      return reply.header('Cache-Control', 'public, max-age=60').send(await rotor.jwks());
    });
  },
};
