import type { FastifyInstance } from 'fastify';
import type { RouteClassRule } from './dialect.js';

/**
 * fastify answers HEAD on every GET route by running the GET's handler and dropping the body: on a GET
 * that renews or logs in (Verifik's `GET /v2/auth/session`, Abitmedia's `GET /v1/auth`) a HEAD renews or
 * logs in and throws the new token away (D-02). The routes classed as renewals, logins and issuance
 * (SPEC §4.5, the rate limiter's classes) therefore may not have a HEAD route: the server refuses to
 * start with one. Declare such a GET with `exposeHeadRoute: false`; a HEAD is then a 405 with `Allow`.
 */
export function refuseHeadOnClassedRoutes(app: FastifyInstance, rules: readonly RouteClassRule[]): void {
  app.addHook('onRoute', (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => String(m).toUpperCase());
    if (!methods.includes('HEAD')) return;
    // Rules are declared without a mount prefix (rotorPlugin's), as the rate limiter matches them.
    const url = route.prefix !== '' && route.url.startsWith(route.prefix) ? route.url.slice(route.prefix.length) : route.url;
    const rule = rules.find((r) => r.url === url && (r.methods === undefined || r.methods.includes('GET') || r.methods.includes('HEAD')));
    if (rule) throw new Error(`HEAD ${route.url} would run a ${rule.class} route and throw its answer away: declare the GET with exposeHeadRoute: false`);
  });
}
