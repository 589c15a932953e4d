import type { FastifyRequest } from 'fastify';
import type { Issued } from '../../domain/engine.js';
import { abandonedOf, appOfPath, clientContextOf } from '../path_app.js';
import { recordableClient } from '../../domain/claims.js';
import { invalidRefreshToken, RotorError } from '../../domain/errors.js';
import type { App } from '../../domain/types.js';
import { type Api, type ApiContext, noStore } from '../../http/api.js';
import { basicCredentials, bodyOf } from '../../http/auth.js';
import { registerFormParser } from '../../http/form.js';
import { registerMultipartParser } from '../../http/multipart.js';
import { MESSAGES, sendAbitmediaError, tokensBody } from './envelope.js';

/** Served at the root and under `/abitmedia/{app}` (then only that app's tokens). */
export const PREFIXES = ['', '/abitmedia/:app'] as const;

const PROFILE = 'abitmedia';
/**
 * A refresh token is a few hundred bytes: multipart parts are kept far below the 64 KiB body limit,
 * which bounds the whole body as for JSON and forms.
 */
const MULTIPART_LIMITS = { fields: 20, files: 2, valueSize: 16 * 1024 };

/** `refreshToken` from a JSON, url-encoded or multipart body (a multipart file part counts as text). */
function refreshTokenOf(request: FastifyRequest): string {
  const value = bodyOf(request).refreshToken;
  if (typeof value === 'string') return value;
  throw invalidRefreshToken('malformed');
}

/**
 * How many Abitmedia apps a root login tries at most: the e-mail's most recent registrations. Every root
 * login costs min(Abitmedia apps, this) password checks, known e-mail or not (D-03), so one app costs one
 * as before and several cost at most two; `/abitmedia/{app}` reaches a registration past the cap.
 */
const ROOT_LOGIN_APPS = 2;

/**
 * Basic login. At the root a login names no app: it goes to the newest of the e-mail's registrations
 * (at most ROOT_LOGIN_APPS) whose password matches; `/abitmedia/{app}` names it. Unknown users cost
 * the same password checks as known ones.
 */
async function login(ctx: ApiContext, request: FastifyRequest, pathApp: App | undefined): Promise<Issued> {
  const credentials = basicCredentials(request);
  if (!credentials) throw new RotorError('invalid_credentials', 'send Authorization: Basic base64(email:password)');
  const input = { username: credentials.user, password: credentials.password, client: recordableClient(clientContextOf(request)) };
  try {
    if (pathApp) return await ctx.rotor.login(pathApp, input);
    const apps = (await ctx.rotor.apps.list()).filter((a) => a.profile === PROFILE);
    return await ctx.rotor.loginAmong(apps, { ...input, maxApps: ROOT_LOGIN_APPS });
  } catch (err) {
    // A disabled subject gets the same answer as a wrong password: Abitmedia has no other.
    if (err instanceof RotorError && err.code === 'subject_disabled') throw new RotorError('invalid_credentials', 'the username or password is wrong');
    throw err;
  }
}

/**
 * SPEC §4.4 Abitmedia: `POST /v1/refreshToken` (JSON, url-encoded or multipart) and `GET /v1/auth`
 * (Basic login). Also served under `/abitmedia/{app}`.
 */
export const abitmediaApi: Api = {
  name: 'abitmedia',
  renderError: (err, _request, reply) => sendAbitmediaError(reply, err),
  routes(app, ctx) {
    // multipart/form-data and url-encoded forms are parsed only here (and forms by OAuth), not by the other APIs.
    app.register(async (scope) => {
      registerMultipartParser(scope, MULTIPART_LIMITS);
      registerFormParser(scope);
      for (const prefix of PREFIXES) {
        scope.post(`${prefix}/v1/refreshToken`, async (request, reply) => {
          const pathApp = await appOfPath(ctx, request, PROFILE, 'Abitmedia');
          const issued = await ctx.rotor.refresh(refreshTokenOf(request), {
            client: pathApp, profile: PROFILE, context: clientContextOf(request), abandoned: abandonedOf(request),
          });
          return noStore(reply).send(tokensBody(issued, MESSAGES.refreshed));
        });

        // No automatic HEAD twin: a HEAD would log in and throw the tokens away (D-02; src/http/head_routes.ts).
        scope.get(`${prefix}/v1/auth`, { exposeHeadRoute: false }, async (request, reply) => {
          const pathApp = await appOfPath(ctx, request, PROFILE, 'Abitmedia');
          const issued = await login(ctx, request, pathApp);
          return noStore(reply).send(tokensBody(issued, MESSAGES.loggedIn));
        });
      }
    });
  },
};
