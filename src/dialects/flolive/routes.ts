import type { FastifyRequest } from 'fastify';
import { abandonedOf, appOfPath, clientContextOf } from '../path_app.js';
import { requireAccess } from '../../domain/engine.js';
import { invalidRequest } from '../../domain/errors.js';
import { type Api, noStore } from '../../http/api.js';
import { renewed, sendFloliveError } from './envelope.js';
import { flolivePermitExpiredAccess } from './policy.js';

/** Served at the root and under `/flolive/{app}` (then only that app's tokens). */
export const PREFIXES = ['', '/flolive/:app'] as const;

const PROFILE = 'flolive';

/** `{token, refreshToken}` from a JSON body; anything else is `REQ_1001` naming what is wrong. */
function pairOf(request: FastifyRequest): { token: string; refreshToken: string } {
  const type = String(request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw invalidRequest('The request body must be JSON (Content-Type: application/json)');
  const body = request.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object');
  const fields = body as Record<string, unknown>;
  for (const field of ['token', 'refreshToken']) {
    if (fields[field] === undefined || fields[field] === null) throw invalidRequest(`Missing required field: ${field}`);
    if (typeof fields[field] !== 'string') throw invalidRequest(`Field ${field} must be a string`);
  }
  return { token: fields.token as string, refreshToken: fields.refreshToken as string };
}

/**
 * SPEC §4.4 floLIVE: `PUT /api/v2/auth/token` renews a pair. The access token must be genuine and of
 * the same session as the refresh token; an expired one is accepted unless the app's policy
 * `flolivePermitExpiredAccess` is false. Also served under `/flolive/{app}` (then only that app's tokens).
 */
export const floliveApi: Api = {
  name: 'flolive',
  renderError: (err, _request, reply) => sendFloliveError(reply, err),
  routes(app, ctx) {
    const { rotor } = ctx;
    for (const prefix of PREFIXES) {
      app.put(`${prefix}/api/v2/auth/token`, async (request, reply) => {
        const pathApp = await appOfPath(ctx, request, PROFILE, 'floLIVE');
        const { token, refreshToken } = pairOf(request);
        const access = requireAccess(await rotor.checkAccess(token, { client: pathApp, profile: PROFILE, allowExpired: true }));
        if (!flolivePermitExpiredAccess.of(access.app.policy)) {
          requireAccess(await rotor.checkAccess(token, { client: access.app, profile: PROFILE, allowExpired: false }));
        }
        const issued = await rotor.refresh(refreshToken, {
          client: access.app,
          profile: PROFILE,
          expectSessionId: access.session.id,
          context: clientContextOf(request), abandoned: abandonedOf(request),
        });
        return noStore(reply).send(renewed(issued));
      });
    }
  },
};
