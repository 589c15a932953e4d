import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RotorError } from '../domain/errors.js';
import { originOfUrl } from '../domain/origins.js';
import type { Rotor } from '../domain/rotor.js';
import type { App } from '../domain/types.js';
import { basicCredentials, bodyOf, rawOrBearerCredential } from './auth.js';
import type { DialectHttp, OpenCors } from './dialect.js';
import { decodedPath } from './target.js';

/**
 * Browsers (SPEC §2.11, §4.6). Which routes answer cross-origin calls, and how:
 * - `api`: the native, OAuth and dialect endpoints. Origins of ROTOR_CORS_ORIGINS (and Rotor's own) get
 *   `Access-Control-Allow-Origin: <origin>`; a request carrying any other `Origin` is refused with 403
 *   `origin_not_allowed` in the API's envelope before its handler runs, so nothing is consumed. Once the
 *   body is parsed, the apps the request concerns (its tokens', its path's, its client's) are found
 *   read-only and the origin must also be allowed by each one's `allowedOrigins`.
 * - `public`: JWKS and discovery documents (GET, public data): allowed origins get the CORS headers,
 *   others get the document without them.
 * - `open`: a dialect's routes that answer every origin, as its own server does (`DialectHttp.openCors`:
 *   JWTPlus's `/app/…`, gin-contrib/cors with `*`); an app whose policy sets `allowedOrigins` narrows it.
 * - `sdk`: `/sdk/…`, `Access-Control-Allow-Origin: *` (a script anyone may load).
 * - `none`: admin and operations endpoints, and the console: no CORS at all.
 * `Origin: null` is never allowed (outside the `open` routes, which allow every origin). No credentials mode.
 */
type CorsClass = 'api' | 'public' | 'open' | 'sdk' | 'none';

const ALLOW_HEADERS = 'authorization, content-type, dpop';
const EXPOSE_HEADERS = 'DPoP-Nonce, WWW-Authenticate, Retry-After';
const MAX_AGE = '600';
const OPS_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);
const APP_KEY_PREFIX = 'ak_';

export function corsClassOf(path: string, open: readonly OpenCors[] = []): CorsClass {
  if (path.startsWith('/sdk/')) return 'sdk';
  if (open.some((o) => o.owns(path))) return 'open';
  if (path === '/admin' || path.startsWith('/admin/') || OPS_PATHS.has(path)) return 'none';
  // The console's page and modules (same-origin only; module scripts send Origin even then).
  if (path === '/console' || path.startsWith('/console/')) return 'none';
  if (path.startsWith('/.well-known/') || /^\/v1\/apps\/[^/]+\/jwks\.json$/.test(path)) return 'public';
  return 'api';
}

export interface CorsOptions {
  rotor: Rotor;
  /** ROTOR_CORS_ORIGINS, canonical. */
  origins: readonly string[];
  /** ROTOR_ISSUER: its origin is always allowed. */
  issuer: string;
  /** The methods some route answers for this request's path (the router's own lookup). */
  allowedMethods(request: FastifyRequest): string[];
  /** The prefix the APIs are mounted under (rotorPlugin in a host's server): routes are classed without it. */
  prefix?: string;
  /** The dialects the server speaks: each says where its app shows only inside its handler. */
  dialects?: readonly DialectHttp[];
}

export function registerCors(app: FastifyInstance, options: CorsOptions): void {
  const own = originOfUrl(options.issuer);
  const allowed = new Set(options.origins);
  if (own !== null) allowed.add(own);
  const prefix = options.prefix ?? '';
  const bare = (path: string): string => (prefix !== '' && path.startsWith(prefix) ? path.slice(prefix.length) || '/' : path);
  const opens = (options.dialects ?? []).flatMap((d) => (d.openCors ? [d.openCors] : []));
  const classOf = (path: string): CorsClass => corsClassOf(path, opens);
  /** The open-CORS dialect that owns `path` (only asked for a path classed `open`). */
  const openOf = (path: string): OpenCors => opens.find((o) => o.owns(path))!;

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (route === undefined) {
      if (request.method === 'OPTIONS') return preflight(request, reply);
      return;
    }
    const cls = classOf(bare(route));
    const origin = originOf(request);
    switch (cls) {
      case 'none':
        return;
      case 'sdk':
        reply.header('Access-Control-Allow-Origin', '*');
        return;
      case 'open':
        if (origin !== undefined) reply.header('Access-Control-Allow-Origin', '*').header('Access-Control-Expose-Headers', openOf(bare(route)).expose);
        return;
      default:
        vary(reply);
        if (origin === undefined) return;
        if (allowed.has(origin)) {
          reply.header('Access-Control-Allow-Origin', origin).header('Access-Control-Expose-Headers', EXPOSE_HEADERS);
          return;
        }
        if (cls === 'api') throw originNotAllowed();
    }
  });

  // After the body is parsed, before the handler: the apps the request concerns, found read-only.
  app.addHook('preHandler', async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined) return;
    const cls = classOf(bare(route));
    if (cls !== 'api' && cls !== 'open') return;
    const origin = originOf(request);
    if (origin === undefined || origin === own) return;
    for (const target of await appsConcerned(options.rotor, request, bare(route), cls === 'open' ? openOf(bare(route)) : null, options.dialects ?? [])) {
      const narrowed = target.policy.allowedOrigins;
      if (Array.isArray(narrowed) && !narrowed.includes(origin)) throw originNotAllowed();
    }
  });

  /** OPTIONS on a path some route answers (SPEC §4.6); other paths fall through to 404/405 as before. */
  function preflight(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
    const methods = options.allowedMethods(request);
    if (methods.length === 0) return undefined;
    const path = bare(decodedPath(request.url));
    const cls = classOf(path);
    if (cls === 'none') return undefined;
    reply.header('Allow', [...methods, 'OPTIONS'].join(', '));
    const origin = originOf(request);
    const isPreflight = origin !== undefined && request.headers['access-control-request-method'] !== undefined;
    if (cls === 'open') {
      if (isPreflight) {
        const open = openOf(path);
        reply.header('Access-Control-Allow-Origin', '*').header('Access-Control-Allow-Methods', open.methods)
          .header('Access-Control-Allow-Headers', open.headers);
      }
    } else if (cls === 'sdk') {
      if (isPreflight) reply.header('Access-Control-Allow-Origin', '*').header('Access-Control-Allow-Methods', methods.join(', ')).header('Access-Control-Max-Age', MAX_AGE);
    } else {
      vary(reply);
      if (isPreflight && allowed.has(origin)) {
        reply.header('Access-Control-Allow-Origin', origin).header('Access-Control-Allow-Methods', methods.join(', '))
          .header('Access-Control-Allow-Headers', ALLOW_HEADERS).header('Access-Control-Max-Age', MAX_AGE);
      }
    }
    return reply.code(204).header('Cache-Control', 'no-store').send();
  }
}

const originNotAllowed = () =>
  new RotorError('origin_not_allowed', 'requests from this web origin are not allowed for this app (ROTOR_CORS_ORIGINS, policy allowedOrigins)');

/** The request's `Origin`, exactly as sent (several are joined by Node, and then match nothing). */
function originOf(request: FastifyRequest): string | undefined {
  const value = request.headers.origin;
  return typeof value === 'string' ? value : undefined;
}

/** Responses differ by `Origin`: caches must key on it. */
function vary(reply: FastifyReply): void {
  const current = reply.getHeader('vary');
  if (current === undefined) reply.header('Vary', 'Origin');
  else if (!String(current).split(',').some((v) => v.trim().toLowerCase() === 'origin')) reply.header('Vary', `${String(current)}, Origin`);
}

/**
 * The apps a request concerns, found without consuming or changing anything: the app its tokens belong
 * to, the app its path or OAuth client names. Where the app cannot be known before the handler runs (a
 * dialect login at the root), every app of that dialect counts.
 */
async function appsConcerned(rotor: Rotor, request: FastifyRequest, route: string, open: OpenCors | null, dialects: readonly DialectHttp[]): Promise<App[]> {
  const params = (request.params ?? {}) as Record<string, unknown>;
  if (open !== null) {
    const id = open.appIdOf(params);
    const found = id !== null ? await rotor.apps.byId(id) : null;
    return found ? [found] : [];
  }
  const refs = new Set<string>();
  const tokens = new Set<string>();
  if (typeof params.app === 'string') refs.add(params.app);
  const body = bodyOf(request);
  for (const field of ['token', 'refreshToken', 'refresh_token']) {
    const value = body[field];
    if (typeof value === 'string' && value.length > 0) tokens.add(value);
  }
  if (route.startsWith('/oauth2/')) {
    const clientId = basicCredentials(request)?.user ?? body.client_id;
    if (typeof clientId === 'string' && clientId.length > 0) refs.add(safeDecode(clientId));
  } else if (!/^basic\s/i.test(String(request.headers.authorization ?? ''))) {
    // verifik and FIB carry their token in Authorization; an app key is no token.
    const credential = rawOrBearerCredential(request);
    if (credential !== null && !credential.startsWith(APP_KEY_PREFIX)) tokens.add(credential);
  }
  const found: App[] = [];
  for (const ref of refs) {
    const app = await appOrNull(rotor, ref);
    if (app) found.push(app);
  }
  for (const token of tokens) {
    const app = await rotor.appOfToken(token);
    if (app) found.push(app);
  }
  // Dialect requests whose app shows only inside the handler (FIB and Abitmedia logins at the root):
  // every app of that dialect counts.
  const unknowable = dialects.find((d) => d.appHiddenUntilHandled?.(request, route) === true)?.api.name;
  if (unknowable !== undefined && typeof params.app !== 'string') {
    found.push(...(await rotor.apps.list()).filter((a) => a.profile === unknowable));
  }
  return found;
}

async function appOrNull(rotor: Rotor, ref: string): Promise<App | null> {
  try {
    return await rotor.apps.get(ref);
  } catch (err) {
    if (err instanceof RotorError && (err.code === 'app_not_found' || err.code === 'invalid_request')) return null;
    throw err;
  }
}

/** Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1). */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}
