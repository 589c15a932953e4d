import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Api } from './api.js';
import { decodedPath } from './target.js';

/**
 * Which API a known path belongs to, so that a 405 for it is written in that API's envelope (SPEC
 * §2.8): an OAuth client gets RFC 6749's body, a Verifik client Verifik's. Only the envelope depends on
 * it, never a decision: the fallback has already asked the router whether the path exists at all.
 */
export class RouteApis {
  private readonly routes: { api: Api; pattern: RegExp }[] = [];

  /** Records every route `api` registers in `scope` (call before its routes are added). */
  track(scope: FastifyInstance, api: Api): void {
    scope.addHook('onRoute', (route) => { this.routes.push({ api, pattern: patternOf(route.url) }); });
  }

  /** The API whose route matches the request's path, as the router decodes it; null when none does. */
  of(request: FastifyRequest): Api | null {
    const path = decodedPath(request.url);
    return this.routes.find((route) => route.pattern.test(path))?.api ?? null;
  }
}

/** A fastify route pattern (`/v1/apps/:app/sessions`, `/sdk/*`) as a whole-path regular expression. */
function patternOf(url: string): RegExp {
  const source = url.split('/').map((segment) => {
    if (segment.startsWith(':')) return '[^/]+';
    return segment.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  }).join('/');
  return new RegExp(`^${source}$`);
}
