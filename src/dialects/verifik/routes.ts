import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireAccess, type VerifiedAccess } from '../../domain/engine.js';
import { invalidRequest } from '../../domain/errors.js';
import type { App } from '../../domain/types.js';
import { type Api, type ApiContext, noStore } from '../../http/api.js';
import { rawOrBearerCredential } from '../../http/auth.js';
import { clientContextOf } from '../../http/client_context.js';
import { renderVerifikError } from './envelope.js';
import { MONTH, verifikMaxMonths } from './policy.js';

/** The context of each server this API is registered on (its clock and configured signature message). */
const contexts = new WeakMap<FastifyInstance, ApiContext>();

/** The `origin` values that renew; no `origin` renews too, a repeated one is refused. */
const RENEWING_ORIGINS: ReadonlySet<string> = new Set(['refresh', 'app']);

/**
 * The access token in `Authorization`, raw or `Bearer `-prefixed (any case). A missing or empty
 * header is Verifik's 409 MissingParameter; anything else is judged as a token.
 */
function presentedToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (typeof header !== 'string' || header.trim() === '') throw invalidRequest('missing Authorization header');
  // Doubled headers or whitespace inside the token make it no token at all: judged (and refused) as one.
  return rawOrBearerCredential(request) ?? '';
}

/** A live access token of a verifik app (the app is the one whose key signed it). */
async function verifiedAccess(ctx: ApiContext, request: FastifyRequest): Promise<VerifiedAccess> {
  const token = presentedToken(request);
  return requireAccess(await ctx.rotor.checkAccess(token, { profile: 'verifik' }));
}

/**
 * `expiresIn` (or Verifik's older spelling `expireIn`; `expiresIn` wins) in months of 30 days:
 * a whole number from 1 to the app's `verifikMaxMonths`. Absent: the app's accessTtl (30 days).
 */
function requestedTtl(app: App, query: Record<string, unknown>): number | undefined {
  const name = query.expiresIn !== undefined ? 'expiresIn' : query.expireIn !== undefined ? 'expireIn' : null;
  if (name === null) return undefined;
  const raw = query[name];
  const max = verifikMaxMonths.of(app.policy);
  const months = typeof raw === 'string' && /^[0-9]{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(months) || months < 1 || months > max) {
    throw invalidRequest(`${name} must be a whole number of months from 1 to ${max}`);
  }
  return months * MONTH;
}

/**
 * SPEC §4.4 verifik: renew a live access token (same session, N × 30 days), or start over in a new
 * session after revoking every session of the subject. No refresh tokens exist in this dialect.
 */
export const verifikApi: Api = {
  name: 'verifik',
  renderError(err, request, reply) {
    const ctx = contexts.get(request.server);
    return renderVerifikError(err, reply, {
      now: ctx ? ctx.rotor.clock.now() : Date.now(),
      signatureMessage: ctx ? ctx.config.verifikSignatureMessage : 'Certified by Rotor',
    });
  },
  routes(app, ctx) {
    contexts.set(app, ctx);
    // Verifik's calls carry no body: whatever a client sends (an empty JSON body, a form) is ignored,
    // within the server's 64 KiB limit.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_request, _body, done) => done(null, undefined));

    const renew = async (request: FastifyRequest, reply: FastifyReply) => {
      const access = await verifiedAccess(ctx, request);
      const query = (request.query ?? {}) as Record<string, unknown>;
      // `refresh` is the documented renewal; `app` is what Verifik's own clients send to refresh and
      // hydrate a session (Verifik's `user`/`settings` extras are not Rotor's to give): both renew.
      if (query.origin !== undefined && !RENEWING_ORIGINS.has(query.origin as string)) {
        throw invalidRequest('origin must be "refresh" or "app"');
      }
      const accessTtl = requestedTtl(access.app, query);
      const issued = await ctx.rotor.renewAccess(access, { accessTtl, context: clientContextOf(request) });
      return noStore(reply).send({ accessToken: issued.accessToken, tokenType: 'bearer' });
    };
    // No automatic HEAD twin: a HEAD would renew and throw the token away (D-02); it gets 405 with Allow.
    app.get('/v2/auth/session', { exposeHeadRoute: false }, renew);
    app.post('/v2/auth/session', renew);

    app.post('/v2/auth/renew-and-revoke', async (request, reply) => {
      const access = await verifiedAccess(ctx, request);
      const issued = await ctx.rotor.replaceSessions(access, { client: clientContextOf(request), reason: 'renew_and_revoke' });
      return noStore(reply).send({ token: issued.accessToken });
    });
  },
};
