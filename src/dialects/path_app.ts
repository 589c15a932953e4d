import type { FastifyRequest } from 'fastify';
import { RotorError } from '../domain/errors.js';
import type { Profile } from '../domain/policy.js';
import type { App } from '../domain/types.js';
import type { ApiContext } from '../http/api.js';

/**
 * The app a dialect's per-app base URL (`/<dialect>/{app}/…`) names — it must be of that dialect's
 * profile — or undefined at the root, where the app is found from the token or the credentials.
 */
export async function appOfPath(ctx: ApiContext, request: FastifyRequest, profile: Profile, label: string): Promise<App | undefined> {
  const ref = (request.params as { app?: string }).app;
  if (ref === undefined) return undefined;
  const app = await ctx.rotor.apps.get(ref);
  if (app.profile !== profile) throw new RotorError('app_not_found', `no ${label} app has that id or name`);
  return app;
}

export { abandonedOf, clientContextOf } from '../http/client_context.js';
