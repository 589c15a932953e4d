import type { FastifyReply, FastifyRequest } from 'fastify';
import { RotorError } from '../../domain/errors.js';
import type { App } from '../../domain/types.js';
import { type Api, type ApiContext } from '../api.js';
import { abandonedOf, clientContextOf } from '../client_context.js';
import { noStore, sendJson } from '../reply.js';
import { DPOP_ALGORITHMS } from '../../crypto/dpop.js';
import { appIssuer } from '../../domain/formats/native.js';
import { basicCredentials, bodyOf, dpopInput } from '../auth.js';
import { registerFormParser } from '../form.js';

/** RFC 6749 §5.2 error codes, by kind (RFC 9449 and RFC 6749 name a few codes of their own within one). */
function oauthError(err: RotorError): { status: number; error: string } {
  switch (err.kind) {
    case 'refused':
      // RFC 9449 §5 and §8: a DPoP proof's refusal keeps its own code, at the token endpoint with 400.
      if (err.code === 'invalid_dpop_proof' || err.code === 'use_dpop_nonce') return { status: 400, error: err.code };
      return { status: 400, error: 'invalid_grant' };
    case 'client_auth':
      return { status: 401, error: 'invalid_client' };
    case 'not_found':
      // The one thing an OAuth request names that can be missing is its client (a token's subject is the grant's).
      if (err.code === 'app_not_found') return { status: 401, error: 'invalid_client' };
      return err.code === 'subject_not_found' ? { status: 400, error: 'invalid_grant' } : { status: 400, error: 'invalid_request' };
    case 'forbidden':
      // RFC 6749 §5.2 has no code for "not from this web origin": the request is refused as invalid, with
      // 403 (not 400) so that it reads as a refusal, not a malformed call; its description names the cause.
      return { status: 403, error: 'invalid_request' };
    case 'rate_limited':
      return { status: 429, error: 'slow_down' };
    case 'unavailable':
      return { status: 503, error: 'temporarily_unavailable' };
    case 'internal':
      return { status: 500, error: 'server_error' };
    case 'bad_input':
    case 'conflict':
      if (err.code === 'invalid_scope') return { status: 400, error: 'invalid_scope' };
      if (err.reason === 'unsupported_grant_type') return { status: 400, error: 'unsupported_grant_type' };
      // RFC 6749 §5.2 has no code for these; the HTTP status still says what happened.
      return { status: err.status === 405 || err.status === 413 || err.status === 415 ? err.status : 400, error: 'invalid_request' };
  }
}

/** RFC 6749 §5.2's descriptions, sent instead of the internal reason. */
const GENERIC_DESCRIPTIONS: Record<string, string> = {
  invalid_grant: 'The provided refresh token is invalid, expired, revoked, or was issued to another client.',
  invalid_client: 'Client authentication failed.',
  temporarily_unavailable: 'The server is temporarily unable to handle the request; retry shortly.',
};

const FORM = 'application/x-www-form-urlencoded';

function requireForm(request: FastifyRequest): Record<string, unknown> {
  const type = String(request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== FORM) throw new RotorError('invalid_request', `the body must be ${FORM}`);
  return bodyOf(request);
}

/**
 * Client authentication (RFC 6749 §2.3): HTTP Basic or client_secret_post with an app key; a public
 * app may send only its client_id. Using two methods at once is refused.
 */
async function authenticateClient(ctx: ApiContext, request: FastifyRequest, body: Record<string, unknown>): Promise<{ app: App; authenticated: boolean }> {
  const basic = basicCredentials(request);
  if (request.headers.authorization !== undefined && !basic) throw new RotorError('invalid_app_key', 'malformed Basic client authentication');
  if (basic && (body.client_secret !== undefined)) throw new RotorError('invalid_request', 'use one client authentication method');
  const clientId: unknown = basic ? safeDecode(basic.user) : body.client_id;
  const secret: unknown = basic ? safeDecode(basic.password) : body.client_secret;
  if (basic && body.client_id !== undefined && body.client_id !== clientId) throw new RotorError('invalid_request', 'client_id differs from the authenticated client');
  if (typeof clientId !== 'string' || clientId.length === 0) throw new RotorError('invalid_app_key', 'client authentication is required');
  let app: App;
  try {
    app = await ctx.rotor.apps.get(clientId);
  } catch (err) {
    // Only "no such app" is a client error; a store outage stays a 503 (S2-11).
    if (err instanceof RotorError && err.code === 'app_not_found') throw new RotorError('invalid_app_key', 'unknown client');
    throw err;
  }
  if (secret === undefined || secret === '') {
    if (app.public) return { app, authenticated: false };
    throw new RotorError('invalid_app_key', 'client authentication is required');
  }
  return { app: await ctx.rotor.apps.authenticate(secret, app), authenticated: true };
}

/** Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1). */
function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * RFC 6749 §5.2: an error_description holds printable ASCII other than `"` and `\` only. Some details
 * quote what the client sent (a repeated parameter's name), which may hold anything: `"` becomes `'`,
 * any other character outside the set `?`.
 */
const oauthText = (text: string): string => text.replace(/"/g, "'").replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '?');

/** RFC 6749 §6: a narrower scope is fine and keeps the original grant; a broader one is refused. */
function checkScope(requested: string, granted: unknown): void {
  const grantedSet = new Set(typeof granted === 'string' ? granted.split(' ').filter(Boolean) : []);
  for (const scope of requested.split(' ').filter(Boolean)) {
    if (!grantedSet.has(scope)) throw new RotorError('invalid_scope', 'the requested scope exceeds the granted scope');
  }
}

/** RFC 8414 fields every document of this server shares. */
function endpoints(base: string, methods: string[]): Record<string, unknown> {
  return {
    token_endpoint: `${base}/oauth2/token`,
    revocation_endpoint: `${base}/oauth2/revoke`,
    introspection_endpoint: `${base}/oauth2/introspect`,
    grant_types_supported: ['refresh_token'],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: methods,
    revocation_endpoint_auth_methods_supported: methods,
    introspection_endpoint_auth_methods_supported: methods.filter((m) => m !== 'none'),
  };
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return sendJson(noStore(reply), status, body);
}

/** SPEC §4.2: the refresh grant, revocation, introspection and discovery. */
export const oauth2Api: Api = {
  name: 'oauth2',
  renderError(err, request, reply) {
    const { status, error } = oauthError(err);
    if (status === 401) reply.header('WWW-Authenticate', 'Basic realm="rotor", charset="UTF-8"');
    // The internal reason (reused, unknown, revoked…) goes to the log and the metrics, never to the
    // client: RFC 6749's own words for the two errors that could tell a token's story (S2-14).
    if (err.reason !== undefined || error === 'invalid_client') request.log.info({ event: 'oauth_refused', error, code: err.code, reason: err.reason }, 'oauth request refused');
    const body: Record<string, string> = { error };
    const description = GENERIC_DESCRIPTIONS[error] ?? (err.kind === 'internal' ? undefined : err.detail);
    if (description !== undefined) body.error_description = oauthText(description);
    return send(reply, status, body);
  },
  routes(app, ctx) {
    const { rotor } = ctx;
    // Forms only where an API takes them (OAuth, Abitmedia): a JSON route never accepts a cross-site
    // "simple request" form.
    registerFormParser(app);

    app.post('/oauth2/token', async (request, reply) => {
      const body = requireForm(request);
      const { app: client, authenticated } = await authenticateClient(ctx, request, body);
      if (body.grant_type === undefined) throw new RotorError('invalid_request', 'grant_type is required');
      if (body.grant_type !== 'refresh_token') {
        throw new RotorError('invalid_request', 'only grant_type=refresh_token is supported', { reason: 'unsupported_grant_type' });
      }
      if (typeof body.refresh_token !== 'string' || body.refresh_token.length === 0) throw new RotorError('invalid_request', 'refresh_token is required');
      if (body.scope !== undefined && typeof body.scope !== 'string') throw new RotorError('invalid_request', 'scope must be a string');
      const scope = body.scope;
      const issued = await rotor.refresh(body.refresh_token, {
        client, clientAuthenticated: authenticated,
        // Judged by the engine once the token, the client and the proof passed, before anything is consumed:
        // an unknown, dead or reused token goes its own way whatever scope it asks for (reuse is still caught).
        precondition: scope ? (session) => checkScope(scope, session.claims.scope) : undefined,
        context: clientContextOf(request),
        dpop: dpopInput(request, ctx.config.issuer, '/oauth2/token'), abandoned: abandonedOf(request),
      });
      if (issued.dpopNonce) reply.header('DPoP-Nonce', issued.dpopNonce);
      const out: Record<string, unknown> = { access_token: issued.accessToken, token_type: issued.tokenType, expires_in: issued.expiresIn };
      if (issued.refreshToken !== null) out.refresh_token = issued.refreshToken;
      if (typeof issued.session.claims.scope === 'string') out.scope = issued.session.claims.scope;
      return send(reply, 200, out);
    });

    app.post('/oauth2/revoke', async (request, reply) => {
      const body = requireForm(request);
      const { app: client } = await authenticateClient(ctx, request, body);
      if (typeof body.token !== 'string') throw new RotorError('invalid_request', 'token is required');
      await rotor.revokeToken(body.token, client);
      return send(reply, 200, {});
    });

    app.post('/oauth2/introspect', async (request, reply) => {
      const body = requireForm(request);
      const { app: client, authenticated } = await authenticateClient(ctx, request, body);
      // RFC 7662 §2.1, §4: introspection needs authorization, or anyone holding harvested tokens could
      // find the live one without tripping reuse detection; a public client's id alone is no secret.
      if (!authenticated) throw new RotorError('invalid_app_key', 'introspection requires client authentication (the app key)');
      if (typeof body.token !== 'string') throw new RotorError('invalid_request', 'token is required');
      const result = await rotor.introspect(body.token, client);
      if (!result.active) return send(reply, 200, { active: false });
      // RFC 7662 §2.2: token_type is an RFC 6749 §7.1 type, Bearer or (RFC 9449) DPoP.
      const out: Record<string, unknown> = {
        ...result.claims, active: true, client_id: client.id, token_type: result.cnfJkt ? 'DPoP' : 'Bearer', sub: result.sub, sid: result.sid,
        exp: result.exp, iat: result.iat, iss: result.iss ?? appIssuer(rotor.issuer, client),
      };
      if (result.aud !== undefined) out.aud = result.aud;
      if (result.cnfJkt) out.cnf = { jkt: result.cnfJkt };
      return send(reply, 200, out);
    });

    // RFC 8414 §3.1 path insertion; by app id only: §3.3 makes the issuer equal the URL it was fetched by.
    app.get('/.well-known/oauth-authorization-server/apps/:appId', async (request, reply) => {
      const { appId } = request.params as { appId: string };
      const target = /^[0-9A-HJKMNP-TV-Z]{26}$/.test(appId) ? await rotor.apps.byId(appId) : null;
      if (!target) return send(reply, 404, { error: 'not_found', error_description: 'no app has that id (the metadata of an app is found by its id)' });
      const base = rotor.issuer;
      const methods = target.public ? ['client_secret_basic', 'client_secret_post', 'none'] : ['client_secret_basic', 'client_secret_post'];
      const metadata: Record<string, unknown> = {
        issuer: appIssuer(base, target),
        ...endpoints(base, methods),
        jwks_uri: `${base}/v1/apps/${target.id}/jwks.json`,
      };
      if (target.policy.dpop !== 'off') metadata.dpop_signing_alg_values_supported = [...DPOP_ALGORITHMS];
      return reply.header('Cache-Control', 'public, max-age=300').send(metadata);
    });

    // The shared endpoints. No jwks_uri: the global JWKS holds every app's keys, and a verifier set up
    // from it would accept any app's tokens (SPEC §4.2): each app's own document names its own JWKS.
    app.get('/.well-known/oauth-authorization-server', async (_request, reply) => {
      const base = rotor.issuer;
      return reply.header('Cache-Control', 'public, max-age=300').send({
        issuer: base, ...endpoints(base, ['client_secret_basic', 'client_secret_post', 'none']),
        dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
      });
    });
  },
};
