import type { FastifyRequest } from 'fastify';
import { RotorError } from '../../domain/errors.js';
import type { Issued } from '../../domain/engine.js';
import type { App } from '../../domain/types.js';
import { rawOrBearerCredential } from '../../http/auth.js';
import { type Api, type ApiContext, noStore } from '../../http/api.js';
import { abandonedOf } from '../path_app.js';
import { jwtplusBodyParser, parseBody, validateFields } from './body.js';
import { fieldErrors, invalidAppId, invalidAppKey, renderJwtPlusError, sendGo } from './envelope.js';
import { jwtplusFormat } from './format.js';
import { appView, base64Pem, publicKeyView, sessionView } from './views.js';

/** go-playground/validator's `ulid` rule: 26 Crockford base32 characters, any case. */
const ULID_SHAPE = /^[0-9A-HJKMNP-TV-Z]{26}$/i;

/**
 * The app named by `{app_id}`, authenticated by its raw app key in `Authorization` (a `Bearer `
 * prefix is tolerated). Only apps of the jwtplus profile answer here; any other app, an unknown app
 * and a wrong key all get the same 403.
 */
async function authenticatedApp(ctx: ApiContext, request: FastifyRequest): Promise<App> {
  const id = (request.params as { app_id?: unknown }).app_id;
  if (typeof id !== 'string' || !ULID_SHAPE.test(id)) throw invalidAppId();
  const app = await ctx.rotor.apps.byId(id.toUpperCase());
  if (!app || app.profile !== 'jwtplus') throw invalidAppKey();
  const key = rawOrBearerCredential(request) ?? '';
  try {
    return await ctx.rotor.apps.authenticate(key, app);
  } catch (err) {
    if (err instanceof RotorError && err.code === 'store_unavailable') throw err;
    throw invalidAppKey();
  }
}

/**
 * A list as JWTPlus's Go writes it: its queries collect rows into a nil slice (`var items []Row`), so
 * no rows is `null`, not `[]`.
 */
const goSlice = <T>(rows: T[]): T[] | null => (rows.length === 0 ? null : rows);

/** `{auth_token, key_id, public_key, refresh_token}` (Go sorts map keys; so does this literal). */
function tokenResponse(issued: Issued): Record<string, unknown> {
  return {
    auth_token: issued.accessToken,
    key_id: issued.key.kid,
    public_key: base64Pem(issued.key.publicPem()),
    refresh_token: issued.refreshToken,
  };
}

/** Caller fields that would set a claim Rotor owns (SPEC §2.7): refused, each named. */
function refuseReserved(body: Record<string, unknown>): void {
  const reserved = jwtplusFormat.reservedClaims;
  const errors = Object.keys(body)
    .filter((k) => k !== 'sub' && k !== 'aud' && reserved.has(k))
    .map((k) => ({ error_field: k, error_message: 'This field is reserved.' }));
  if (errors.length > 0) throw fieldErrors(errors);
}

/**
 * SPEC §4.4 jwtplus: JWTPlus's app API (`/app/{app_id}/…`). Each route authenticates the app, reads
 * the body the way JWTPlus does, calls the core and answers in JWTPlus's shapes.
 */
export const jwtplusApi: Api = {
  name: 'jwtplus',
  renderError: (err, request, reply) => renderJwtPlusError(err, reply, request.routeOptions?.url),
  routes(app, ctx) {
    const { rotor } = ctx;
    // JWTPlus reads every body as JSON whatever its Content-Type (gin's ShouldBindJSON). That opens no
    // CSRF hole: every route needs the app key in Authorization, which no simple request can carry.
    const json = app.getDefaultJsonParser('error', 'error');
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, jwtplusBodyParser(json));

    app.get('/app/:app_id', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      return sendGo(reply, 200, { app: appView(target, await rotor.apps.listKeys(target.id)) });
    });

    app.get('/app/:app_id/pub-keys', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const keys = (await rotor.apps.listKeys(target.id)).map((k) => publicKeyView(k, target)).filter((k) => k !== null);
      return sendGo(reply, 200, { keys: goSlice(keys) });
    });

    app.post('/app/:app_id/sign', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const body = parseBody(request.body);
      const fields = validateFields(body, {
        sub: ['required', { max: 255 }], aud: ['required', { max: 256 }], ip: ['required', 'ip'], useragent: ['required', { max: 512 }],
      });
      refuseReserved(body);
      const { sub: _sub, aud: _aud, ...claims } = body;
      const issued = await rotor.issueSession(target, {
        subject: fields.sub, claims, audience: fields.aud, client: { ip: fields.ip, userAgent: fields.useragent },
      });
      return sendGo(noStore(reply), 200, tokenResponse(issued));
    });

    app.post('/app/:app_id/renew', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const fields = validateFields(parseBody(request.body), {
        refresh_token: ['required', 'jwt'], ip: ['required', 'ip'], useragent: ['required', { max: 512 }],
      });
      const issued = await rotor.refresh(fields.refresh_token, {
        client: target, clientAuthenticated: true, profile: 'jwtplus', context: { ip: fields.ip, userAgent: fields.useragent },
        abandoned: abandonedOf(request),
      });
      return sendGo(noStore(reply), 200, tokenResponse(issued));
    });

    app.post('/app/:app_id/verify', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const { token } = validateFields(parseBody(request.body), { token: ['required', 'jwt'] });
      const { ok: verified } = await rotor.checkAccess(token, { client: target, profile: 'jwtplus', newestPair: true });
      return sendGo(reply, 200, { verified });
    });

    app.post('/app/:app_id/logout', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const { token } = validateFields(parseBody(request.body), { token: ['required', 'jwt'] });
      await rotor.revokeToken(token, target);
      return sendGo(reply, 200, { status: 'ok' });
    });

    app.post('/app/:app_id/get-session', async (request, reply) => {
      const target = await authenticatedApp(ctx, request);
      const { sub } = validateFields(parseBody(request.body), { sub: ['required'] });
      let pairs: Awaited<ReturnType<typeof rotor.livePairs>>;
      try {
        pairs = await rotor.livePairs(target, sub);
      } catch (err) {
        // A subject id Rotor could never have issued to (too long, control characters) has no sessions.
        if (err instanceof RotorError && err.code === 'invalid_request') pairs = [];
        else throw err;
      }
      const keys = await rotor.apps.listKeys(target.id);
      const revoked = new Set(keys.filter((k) => k.state === 'revoked').map((k) => k.kid));
      const now = Math.floor(rotor.clock.now() / 1000);
      const rows = pairs
        .sort((a, b) => a.session.createdAt - b.session.createdAt)
        .map(({ session, refresh }) => sessionView(session, refresh, target, keys))
        // A revoked key's tokens are gone (JWTPlus deletes their rows when it revokes the key).
        .filter((row) => (row.auth_token_exp as number) > now && (row.auth_token_nbf as number) <= now && !revoked.has(row.key_id as string));
      return sendGo(reply, 200, { sessions: goSlice(rows) });
    });
  },
};
