import type { FastifyRequest } from 'fastify';
import { abandonedOf, appOfPath, clientContextOf } from '../path_app.js';
import { requireAccess } from '../../domain/engine.js';
import { invalidRequest, RotorError } from '../../domain/errors.js';
import type { App, Subject } from '../../domain/types.js';
import { type Api, type ApiContext, noStore } from '../../http/api.js';
import { rawOrBearerCredential } from '../../http/auth.js';
import { loggedOut, sendFibError, sessionBody } from './envelope.js';
import { fibFormat } from './format.js';
import { fibLogin } from './login.js';
import { acceptEmptyJsonBody } from '../../http/empty_json.js';

/** Served at the root and under `/fib/{app}` (then only that app's tokens). */
export const PREFIXES = ['', '/fib/:app'] as const;

const PROFILE = 'fib';
export const BASE = '/auth/api/v1/authentication-management';

/** The token in `Authorization`, `Bearer `-prefixed or raw; a missing or unparsable header is 401. */
function tokenOf(request: FastifyRequest): string {
  const credential = rawOrBearerCredential(request);
  if (credential) return credential;
  throw new RotorError('unauthorized', 'Missing or invalid Authorization header');
}

/**
 * At the root a login names no app. It goes to the one FIB app there is; with several, to the app
 * where this e-mail has this public key registered — the most recently registered one if several do
 * (each of them trusts that key for that e-mail). `/fib/{app}` names the app outright.
 */
async function appOfLogin(ctx: ApiContext, email: string, publicKeyHex: string): Promise<App> {
  const apps = (await ctx.rotor.apps.list()).filter((a) => a.profile === PROFILE);
  const [only] = apps;
  if (apps.length === 1 && only) return only;
  const knowing: { app: App; subject: Subject }[] = [];
  for (const app of apps) {
    const subject = await subjectOrNull(ctx, app, email);
    if (subject) knowing.push({ app, subject });
  }
  const matching = knowing.filter((k) => k.subject.ed25519PublicKey === publicKeyHex.toLowerCase());
  const [best] = (matching.length > 0 ? matching : knowing).sort((a, b) => b.subject.updatedAt - a.subject.updatedAt);
  if (!best) throw new RotorError('subject_not_found', 'no subject has that id');
  return best.app;
}

/** SPEC §4.4 FIB: refresh (PATCH), Ed25519 login (POST) and logout. Also served under `/fib/{app}`. */
export const fibApi: Api = {
  name: 'fib',
  renderError: (err, _request, reply) => sendFibError(reply, err),
  routes(app, ctx) {
    const { rotor } = ctx;
    // FIB clients may send `Content-Type: application/json` with no body on PATCH and logout: here it is `{}`.
    acceptEmptyJsonBody(app, {});
    for (const prefix of PREFIXES) {
      app.patch(`${prefix}${BASE}/session`, async (request, reply) => {
        const pathApp = await appOfPath(ctx, request, PROFILE, 'FIB');
        const token = tokenOf(request);
        const issued = await rotor.refresh(token, { client: pathApp, profile: PROFILE, context: clientContextOf(request), abandoned: abandonedOf(request) });
        return noStore(reply).send(sessionBody(issued));
      });

      app.post(`${prefix}${BASE}/session`, async (request, reply) => {
        const pathApp = await appOfPath(ctx, request, PROFILE, 'FIB');
        const body = request.body;
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object');
        const { email, signature, authPublicKeyHex } = body as Record<string, unknown>;
        for (const [field, value] of [['email', email], ['signature', signature], ['authPublicKeyHex', authPublicKeyHex]] as const) {
          if (typeof value !== 'string') throw invalidRequest(`${field} is required and must be a string`);
        }
        const target = pathApp ?? (await appOfLogin(ctx, email as string, authPublicKeyHex as string));
        const issued = await rotor.loginWithProof(target, {
          subject: email, rule: fibLogin, proof: { signatureHex: signature, publicKeyHex: authPublicKeyHex }, client: clientContextOf(request),
        });
        return noStore(reply).send(sessionBody(issued));
      });

      app.post(`${prefix}${BASE}/logout`, async (request, reply) => {
        const pathApp = await appOfPath(ctx, request, PROFILE, 'FIB');
        const token = tokenOf(request);
        const check = await rotor.checkAccess(token, { client: pathApp, profile: PROFILE });
        if (!check.ok) await refuseGoneSubject(ctx, token, pathApp);
        await rotor.logout(requireAccess(check));
        return noStore(reply).send(loggedOut);
      });
    }
  },
};

/** A genuine FIB access token whose subject was deleted is 404 (SPEC §4.4), not merely 401. */
async function refuseGoneSubject(ctx: ApiContext, token: string, pathApp: App | undefined): Promise<void> {
  const verified = await ctx.rotor.verifyJwt(token, { client: pathApp, allowExpired: false });
  if (!verified || verified.app.profile !== PROFILE || !fibFormat.isAccessToken(verified.parts)) return;
  const sub = verified.parts.payload.sub;
  if (typeof sub === 'string' && !(await subjectOrNull(ctx, verified.app, sub))) {
    throw new RotorError('subject_not_found', 'no subject has that id');
  }
}

async function subjectOrNull(ctx: ApiContext, app: App, subject: string): Promise<Subject | null> {
  try {
    return await ctx.rotor.subjects.get(app, subject);
  } catch (err) {
    if (err instanceof RotorError && err.code === 'subject_not_found') return null;
    throw err;
  }
}
