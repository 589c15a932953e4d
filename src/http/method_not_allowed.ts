import type { FastifyInstance, FastifyRequest, HTTPMethods } from 'fastify';

/**
 * Remembers every method some route answers so that a request whose path exists under other methods
 * gets 405 with `Allow` instead of 404 (and so that method-override headers change nothing).
 *
 * The path is never parsed here: the router itself is asked (`findRoute` with the raw request target,
 * the lookup fastify makes for a request), so `Allow` is computed from exactly the path the router
 * matches — percent-decoded, absolute form stripped, query and fragment cut off — and a spelling the
 * router does not match (a trailing slash, `//`, dot segments, another letter case) is a plain 404.
 */
export function trackRoutes(app: FastifyInstance): (request: FastifyRequest) => string[] {
  const methods = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) methods.add(String(m).toUpperCase());
  });
  return (request) => {
    const allowed = [...methods].filter((method) => app.findRoute({ method: method as HTTPMethods, url: request.url }) !== null).sort();
    // The router found nothing for this request's own method, yet "finds" it now: the target is one it
    // refuses as a whole (a bad URL, an over-long parameter answer for every method). Nothing is allowed.
    return allowed.includes(request.method) ? [] : allowed;
  };
}
