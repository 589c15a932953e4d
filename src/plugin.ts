import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { canonicalOrigin } from './domain/origins.js';
import { internalsOf, type RotorInstance } from './library.js';
import { type Api, type ApiContext, registerApi } from './http/api.js';
import { registerCors } from './http/cors.js';
import { refuseForeignCharsets } from './http/charset.js';
import { registerFallbacks } from './http/fallbacks.js';
import { RouteApis } from './http/route_apis.js';
import { trackRoutes } from './http/method_not_allowed.js';
import { refuseHeadOnClassedRoutes } from './http/head_routes.js';
import { nativeApi } from './http/native/routes.js';
import { oauth2Api } from './http/oauth2/routes.js';
import { CORE_ROUTE_CLASSES, DEFAULT_RATE_LIMITS, RateLimiter, type RateLimits } from './http/rate_limit.js';
import { rateLimitsProblem } from './config.js';
import { BODY_LIMIT } from './http/server.js';

export interface RotorPluginOptions {
  /** The engine, from `createRotor()`. */
  rotor: RotorInstance;
  /**
   * Exact origins browsers may call these APIs from (as ROTOR_CORS_ORIGINS); the issuer's own origin is
   * always allowed, and each app's policy `allowedOrigins` narrows the list for its tokens.
   */
  corsOrigins?: string[];
  /**
   * Per-minute limits on refreshes, logins and issuance per client ip / app (Rotor's defaults when
   * left out; counts pooled through the store); `false` when the host limits requests itself.
   */
  rateLimits?: Partial<RateLimits> | false;
}

/** Route-declaring methods of a fastify instance. */
const ROUTE_METHODS = new Set(['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'all']);

/**
 * The instance an API declares its routes on, with `map` deciding each route's path: its path, another
 * one, or null (not mounted). Applies to the scopes it registers, too (registerApi makes one per API).
 */
function mapRoutes(instance: FastifyInstance, map: (url: string) => string | null): FastifyInstance {
  const proxy: FastifyInstance = new Proxy(instance, {
    get(target, prop) {
      if (typeof prop === 'string' && ROUTE_METHODS.has(prop)) {
        return (url: string, ...rest: unknown[]) => {
          const mapped = map(url);
          if (mapped !== null) (target[prop as 'get'] as (...a: unknown[]) => unknown).call(target, mapped, ...rest);
          return proxy;
        };
      }
      if (prop === 'route') {
        return (options: { url: string }) => {
          const mapped = map(options.url);
          if (mapped !== null) target.route({ ...(options as Parameters<FastifyInstance['route']>[0]), url: mapped });
          return proxy;
        };
      }
      if (prop === 'register') {
        return (plugin: (child: FastifyInstance, opts: unknown) => Promise<void>, opts?: unknown) =>
          target.register(async (child, o) => plugin(mapRoutes(child, map), o), opts as never);
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return proxy;
}

const isWellKnown = (url: string) => url.startsWith('/.well-known/');

function contextOf(options: RotorPluginOptions): ApiContext & { issuerPath: string } {
  const { rotor, config, metrics } = internalsOf(options?.rotor);
  const corsOrigins = (options.corsOrigins ?? []).map((origin) => {
    const canonical = canonicalOrigin(origin);
    if (canonical === null) throw new TypeError(`rotorPlugin corsOrigins: ${JSON.stringify(origin)} is not an exact origin such as https://app.example.com`);
    return canonical;
  });
  const limits = options.rateLimits === false ? null : { ...DEFAULT_RATE_LIMITS, ...options.rateLimits };
  const problem = limits && rateLimitsProblem(limits);
  if (problem) throw new TypeError(`rotorPlugin rateLimits: ${problem}`);
  return {
    rotor, metrics, config: { ...config, corsOrigins, rateLimits: limits },
    issuerPath: new URL(rotor.issuer).pathname.replace(/\/+$/, ''),
  };
}

/**
 * SPEC §10: Rotor's native (§4.1) and OAuth 2.0 (§4.2) APIs inside a host's fastify server, under the
 * prefix the host registers it with: `app.register(rotorPlugin, { prefix: '/auth', rotor })` serves
 * `/auth/v1/refresh`, `/auth/oauth2/token`, `/auth/v1/apps/{app}/jwks.json`, … The engine's `issuer`
 * must be the public URL of that prefix (`https://example.com/auth`). The root `/.well-known/…`
 * documents are the host's (RFC 8414 puts them at the root of the host): `rotorWellKnown` serves them.
 *
 * Everything else is as in `rotor serve`: Rotor's error envelopes, `Cache-Control: no-store` on
 * tokens, a 64 KiB body limit, no `text/plain` bodies, CORS (§4.6) and rate limits by route. The admin
 * API and the console are not mounted: they are `rotor serve`'s (or the library's `apps`, `keys`, …).
 */
export const rotorPlugin: FastifyPluginAsync<RotorPluginOptions> = async (scope, options) => {
  const ctx = contextOf(options);
  const prefix = scope.prefix;
  // JSON and forms only: a cross-site "simple request" with a text/plain body is refused (415).
  scope.removeContentTypeParser('text/plain');
  scope.addHook('onRoute', (route) => {
    route.bodyLimit ??= BODY_LIMIT;
  });
  scope.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    ctx.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    ctx.metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
  if (ctx.config.rateLimits) {
    const counter = ctx.rotor.rateCounter();
    const limiter = new RateLimiter(ctx.config.rateLimits, ctx.rotor.clock, counter, scope.log as never);
    const appIdOf = (ref: string) => ctx.rotor.apps.idOf(ref);
    limiter.register(scope, () => ctx.metrics.events.inc({ event: 'rate_limited' }), appIdOf, prefix);
    limiter.start();
    scope.addHook('onClose', async () => limiter.stop());
  }
  refuseForeignCharsets(scope);
  refuseHeadOnClassedRoutes(scope, CORE_ROUTE_CLASSES);
  const allowedMethods = trackRoutes(scope);
  registerCors(scope, { rotor: ctx.rotor, origins: ctx.config.corsOrigins, issuer: ctx.config.issuer, allowedMethods, prefix });
  const routeApis = new RouteApis();
  for (const api of [nativeApi, oauth2Api] as Api[]) {
    registerApi(mapRoutes(scope, (url) => (isWellKnown(url) ? null : url)), api, ctx, routeApis);
  }
  // Under a prefix of its own, unknown paths and methods are answered as Rotor answers them (404, 405
  // with Allow, CORS preflights); at the host's root they stay the host's.
  registerFallbacks(scope, { allowedMethods, notFound: prefix !== '' && prefix !== '/', routeApis });
};
// Encapsulated on purpose (no fastify-plugin): Rotor's hooks, parsers and error handlers stay inside its prefix.

/**
 * RFC 8414 metadata for the engine's issuer, at the root of the host as §3.1 places it: with issuer
 * `https://example.com/auth`, `GET /.well-known/oauth-authorization-server/auth/apps/{appId}` (each
 * app's issuer `…/auth/apps/{appId}`, its own `jwks_uri`) and `GET /.well-known/oauth-authorization-server/auth`
 * (the shared endpoints). Register it without a prefix: `app.register(rotorWellKnown, { rotor })`.
 */
export const rotorWellKnown: FastifyPluginAsync<Pick<RotorPluginOptions, 'rotor' | 'corsOrigins'>> = async (scope, options) => {
  const ctx = contextOf({ ...options, rateLimits: false });
  const insert = (url: string): string | null => {
    const base = '/.well-known/oauth-authorization-server';
    if (url !== base && !url.startsWith(`${base}/`)) return null;
    return `${base}${ctx.issuerPath}${url.slice(base.length)}`;
  };
  refuseForeignCharsets(scope);
  const allowedMethods = trackRoutes(scope);
  registerCors(scope, { rotor: ctx.rotor, origins: ctx.config.corsOrigins, issuer: ctx.config.issuer, allowedMethods });
  registerApi(mapRoutes(scope, insert), oauth2Api, ctx);
};
