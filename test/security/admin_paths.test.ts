import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { adminApi, guardAdminRoutes } from '../../src/http/admin/routes.js';
import type { ApiContext } from '../../src/http/api.js';
import { ADMIN_TOKEN, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * S2-01 (SPEC §4.3, invariant N8): every admin route needs the admin token however the request target
 * is spelled. Everything here goes over raw sockets: HTTP client libraries normalise paths.
 */

interface RawResponse { status: number; headers: Record<string, string>; body: string; raw: string }

/** Sends one request on its own connection (Connection: close) and parses the answer. */
function send(port: number, request: string): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('utf8');
      const split = raw.indexOf('\r\n\r\n');
      const head = split < 0 ? raw : raw.slice(0, split);
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: /^HTTP\/1\.[01] \d{3}/.test(raw) ? Number(raw.slice(9, 12)) : 0, headers, body: split < 0 ? '' : raw.slice(split + 4), raw });
    };
    const timer = setTimeout(() => socket.destroy(), 5000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.write(request);
  });
}

type Auth = 'none' | 'wrong' | 'doubled' | 'right';
const AUTH_HEADERS: Record<Auth, string> = {
  none: '',
  wrong: `Authorization: Bearer ${ADMIN_TOKEN.slice(0, -1)}X\r\n`,
  // Two Authorization headers are ambiguous and count as none (H-12), even when both are right.
  doubled: `Authorization: Bearer ${ADMIN_TOKEN}\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n`,
  right: `Authorization: Bearer ${ADMIN_TOKEN}\r\n`,
};

function request(method: string, target: string, auth: Auth, body: unknown, requestLine?: (method: string, target: string) => string): string {
  const line = requestLine ? requestLine(method, target) : `${method} ${target} HTTP/1.1`;
  const payload = body === undefined ? '' : JSON.stringify(body);
  const type = body === undefined ? '' : 'Content-Type: application/json\r\n';
  return `${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n${AUTH_HEADERS[auth]}${type}Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
}

// ── spellings ────────────────────────────────────────────────────────────────────────────────────

interface Spelling {
  name: string;
  /** True when the router must take it for the canonical route: then it must be exactly 401 without the token, and served with it. */
  same: boolean;
  target: string;
  requestLine?: (method: string, target: string) => string;
}

const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h.toLowerCase()}`;
};
/** Percent-encodes the first character of segment `i` (1-based) of the path, lower-case hex. */
const encodeFirstOf = (path: string, i: number) =>
  path.split('/').map((seg, j) => (j === i && seg.length > 0 ? hex(seg[0] as string, false) + seg.slice(1) : seg)).join('/');
/** Percent-encodes the last character of segment `i` (1-based), upper-case hex (`/admi%6E`). */
const encodeLastOf = (path: string, i: number) =>
  path.split('/').map((seg, j) => (j === i && seg.length > 0 ? seg.slice(0, -1) + hex(seg.at(-1) as string, true) : seg)).join('/');
/** Percent-encodes every character of every segment (not the slashes). */
const encodeAll = (path: string, upper: boolean) => path.split('/').map((seg) => [...seg].map((c) => hex(c, upper)).join('')).join('/');
/** Replaces the n-th slash (0-based) with `by`. */
const replaceSlash = (path: string, n: number, by: string) => {
  let seen = -1;
  return path.replace(/\//g, (s) => (++seen === n ? by : s));
};

function spellingsOf(path: string, port: number): Spelling[] {
  const segments = path.split('/').length - 1;
  const rest = path.slice('/admin'.length);
  const list: Spelling[] = [
    { name: 'canonical', same: true, target: path },
    ...Array.from({ length: segments }, (_, k) => ({ name: `%xx first letter of segment ${k + 1}`, same: true, target: encodeFirstOf(path, k + 1) })),
    ...Array.from({ length: segments }, (_, k) => ({ name: `%XX last letter of segment ${k + 1} (upper hex)`, same: true, target: encodeLastOf(path, k + 1) })),
    { name: 'every character %xx (lower hex)', same: true, target: encodeAll(path, false) },
    { name: 'every character %XX (upper hex)', same: true, target: encodeAll(path, true) },
    { name: '/ad%6din (lower-case hex digit)', same: true, target: `/ad%6din${rest}` },
    { name: '/ad%6Din (upper-case hex digit)', same: true, target: `/ad%6Din${rest}` },
    { name: '?query', same: true, target: `${path}?x=1` },
    { name: 'empty ?', same: true, target: `${path}?` },
    { name: '?query with encoded slashes and dots', same: true, target: `${path}?a=%2F..%2F&b` },
    { name: 'absolute form, this host', same: true, target: `http://127.0.0.1:${port}${path}` },
    { name: 'absolute form, another host', same: true, target: `http://evil.example${path}` },
    { name: 'absolute form, upper-case scheme and host', same: true, target: `HTTP://EVIL.EXAMPLE${path}` },
    { name: 'absolute form, https', same: true, target: `https://evil.example${path}` },
    { name: 'absolute form with userinfo', same: true, target: `http://user:pw@evil.example${path}` },
    { name: 'absolute form, percent-encoded path', same: true, target: `http://evil.example${encodeFirstOf(path, 1)}` },
    { name: 'absolute form with ?query', same: true, target: `http://evil.example${path}?q=1` },
    { name: 'HTTP/1.0', same: true, target: path, requestLine: (m, t) => `${m} ${t} HTTP/1.0` },
    { name: '#fragment (the parser passes it on, the router cuts it off)', same: true, target: `${path}#frag` },
    { name: 'two spaces before the target', same: true, target: path, requestLine: (m, t) => `${m}  ${t} HTTP/1.1` },
    // Spellings the router may refuse or route elsewhere: never 2xx without the token, never 5xx.
    { name: 'absolute form with #fragment', same: false, target: `http://evil.example${path}#frag` },
    { name: 'absolute form, bad port', same: false, target: `http://evil.example:99999${path}` },
    { name: 'absolute form, empty host', same: false, target: `http://${path}` },
    { name: 'absolute form, another scheme', same: false, target: `ftp://evil.example${path}` },
    { name: 'scheme-relative //host', same: false, target: `//evil.example${path}` },
    { name: 'http: without //', same: false, target: `http:${path}` },
    ...Array.from({ length: segments }, (_, n) => ({ name: `%2F for slash ${n}`, same: false, target: replaceSlash(path, n, '%2F') })),
    { name: '%2f for slash 1 (lower hex)', same: false, target: replaceSlash(path, 1, '%2f') },
    { name: 'leading double slash', same: false, target: `/${path}` },
    { name: 'inner double slash', same: false, target: replaceSlash(path, 1, '//') },
    { name: 'trailing slash', same: false, target: `${path}/` },
    { name: '/./admin', same: false, target: `/.${path}` },
    { name: '/admin/./…', same: false, target: `/admin/.${rest}` },
    { name: '/v1/../admin', same: false, target: `/v1/..${path}` },
    { name: '/%2e%2e/admin', same: false, target: `/%2e%2e${path}` },
    { name: '/v1/%2e%2e/admin', same: false, target: `/v1/%2e%2e${path}` },
    { name: '/v1/%2E%2E/admin', same: false, target: `/v1/%2E%2E${path}` },
    { name: '/v1%2f..%2fadmin', same: false, target: `/v1%2f..%2f${path.slice(1)}` },
    { name: 'trailing /.', same: false, target: `${path}/.` },
    { name: 'last segment via /x/..', same: false, target: `${path}/x/..` },
    { name: 'double-encoded %2561', same: false, target: `/%2561dmin${rest}` },
    { name: 'overlong UTF-8 for a', same: false, target: `/%c1%a1dmin${rest}` },
    { name: 'invalid %zz', same: false, target: `/%zzadmin${rest}` },
    { name: '/ADMIN', same: false, target: `/ADMIN${rest}` },
    { name: '/Admin', same: false, target: `/Admin${rest}` },
    { name: 'whole path upper-case', same: false, target: path.toUpperCase() },
    { name: 'dotless ı (toUpperCase is I)', same: false, target: `/adm%C4%B1n${rest}` },
    { name: ';param on /admin', same: false, target: `/admin;x${rest}` },
    { name: ';param at the end', same: false, target: `${path};x` },
    { name: 'backslash for slash 1', same: false, target: replaceSlash(path, 1, '\\') },
    { name: 'trailing %20', same: false, target: `${path}%20` },
    { name: 'trailing %09', same: false, target: `${path}%09` },
    { name: '%00 after /admin', same: false, target: `/admin%00${rest}` },
    { name: 'trailing %00', same: false, target: `${path}%00` },
    { name: 'raw tab in the target', same: false, target: `${path}\t` },
    { name: 'tabs as separators', same: false, target: path, requestLine: (m, t) => `${m}\t${t}\tHTTP/1.1` },
    { name: 'lower-case method', same: false, target: path, requestLine: (m, t) => `${m.toLowerCase()} ${t} HTTP/1.1` },
  ];
  return list;
}

// ── the admin routes ─────────────────────────────────────────────────────────────────────────────

/** Every route src/http/admin/routes.ts registers, recorded by running it against a stand-in instance. */
function registeredAdminRoutes(): string[] {
  const seen: string[] = [];
  const verbs = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];
  const recorder: any = new Proxy({}, {
    get(_target, prop) {
      if (typeof prop === 'string' && verbs.includes(prop)) return (url: string) => { seen.push(`${prop.toUpperCase()} ${url}`); };
      if (prop === 'route') return (opts: { method: string | string[]; url: string }) => {
        for (const m of [opts.method].flat()) seen.push(`${m.toUpperCase()} ${opts.url}`);
      };
      return () => recorder;
    },
  });
  const ctx = { rotor: {}, config: { adminToken: 'x' }, metrics: {} } as unknown as ApiContext;
  adminApi.routes(recorder, ctx);
  return seen;
}

type Params = Record<string, string>;

interface RouteCase {
  /** Status with the admin token on the canonical path. */
  expect: number;
  /** A JSON body (counter n keeps names unique). */
  body?: (n: number, auth: Auth) => unknown;
  /** Fresh parameters for every request that may succeed (destructive routes). */
  fresh?: (server: TestServer, n: number) => Promise<Params>;
  /** Parameters naming the victim's own records, for the attempts without the token too (so the snapshot would show a hit). */
  target?: () => Params;
}

describe('S2-01 admin API: authorization is a property of the route, not of how the URL is spelled', () => {
  let server: TestServer;
  let port: number;
  let victim: { id: string; name: string };
  let victimAppKey: { id: string; appKey: string };
  let victimSession: string;
  let counter = 0;
  /** Calls into the admin domain (apps, subjects) while armed: a handler was reached. */
  const reached: string[] = [];
  let armed = false;

  const freshApp = async (prefix: string) => (await server.rotor.apps.create({ name: `${prefix}-${++counter}` })).app;

  const CASES: Record<string, RouteCase> = {
    'POST /admin/apps': { expect: 201, body: (n, auth) => ({ name: auth === 'right' ? `made-${n}` : `evil-${n}` }) },
    'GET /admin/apps': { expect: 200 },
    'GET /admin/apps/:app': { expect: 200 },
    'PATCH /admin/apps/:app': { expect: 200, body: (_n, auth) => ({ description: auth === 'right' ? 'patched by the admin' : 'pwned' }) },
    'DELETE /admin/apps/:app': { expect: 204, fresh: async () => ({ app: (await freshApp('doomed')).id }) },
    'POST /admin/apps/:app/app-keys': { expect: 201 },
    'DELETE /admin/apps/:app/app-keys/:id': { expect: 204, fresh: async (s) => ({ id: (await s.rotor.apps.createAppKey(victim.id)).id }) },
    'GET /admin/apps/:app/keys': { expect: 200 },
    'POST /admin/apps/:app/keys/rotate': { expect: 200 },
    'POST /admin/apps/:app/keys/:kid/revoke': {
      expect: 200,
      fresh: async (s) => {
        const app = await freshApp('revoked');
        return { app: app.id, kid: (await s.rotor.internals.store.listSigningKeys(app.id))[0]!.kid };
      },
    },
    'PUT /admin/apps/:app/subjects/:subject': {
      expect: 200,
      body: (_n, auth) => (auth === 'right' ? { claims: { role: 'set-by-admin' } } : { password: 'pwned-password', claims: { role: 'root' }, status: 'active' }),
    },
    'GET /admin/apps/:app/subjects/:subject': { expect: 200 },
    'GET /admin/apps/:app/subjects': { expect: 200 },
    'GET /admin/apps/:app/sessions': { expect: 200 },
    'DELETE /admin/apps/:app/sessions/:id': {
      expect: 204,
      target: () => ({ id: victimSession }),
      fresh: async (s) => ({ id: (await s.rotor.issueSession(await s.rotor.apps.get(victim.id), { subject: 'alice' })).session.id }),
    },
    'DELETE /admin/apps/:app/subjects/:subject/sessions': { expect: 200 },
    'GET /admin/events': { expect: 200 },
    'GET /admin/stats': { expect: 200 },
    'DELETE /admin/apps/:app/subjects/:subject': {
      expect: 204,
      fresh: async (s) => {
        const subject = `gone-${++counter}`;
        await s.rotor.subjects.put((await s.rotor.apps.get(victim.id)), subject, { claims: {} });
        return { subject };
      },
    },
  };
  /** GET routes are also served for HEAD (fastify's exposeHeadRoutes). */
  const allRoutes = () => {
    const routes = registeredAdminRoutes();
    return [...routes, ...routes.filter((r) => r.startsWith('GET ')).map((r) => r.replace(/^GET /, 'HEAD '))];
  };
  const caseOf = (route: string): RouteCase => CASES[route.replace(/^HEAD /, 'GET ')] ?? { expect: -1 };

  /** A victim of its own for each test: an app with a second live app key, its signing key, subject alice. */
  const newVictim = async () => {
    const created = await server.rotor.apps.create({ name: `victim-${++counter}` });
    victim = { id: created.app.id, name: created.app.name };
    victimAppKey = await server.rotor.apps.createAppKey(victim.id);
    await server.rotor.subjects.put(created.app, 'alice', { claims: { role: 'user' } });
    victimSession = (await server.rotor.issueSession(created.app, { subject: 'alice' })).session.id;
  };
  /** The parameters every attempt aims at: the victim app, its live app key and signing key, subject alice. */
  const sharedParams = async (): Promise<Params> => ({
    app: victim.id, id: victimAppKey.id, kid: (await server.rotor.internals.store.listSigningKeys(victim.id))[0]!.kid, subject: 'alice',
  });
  const fill = (pattern: string, params: Params) => pattern.replace(/:([a-z_]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`no value for :${name} in ${pattern}`);
    return value;
  });

  /** Everything an admin call could change, read straight from the store. */
  const snapshot = async () => JSON.stringify({
    apps: (await server.rotor.internals.store.listApps()).map((a) => ({ ...a })),
    keys: await server.rotor.internals.store.listSigningKeys(victim.id),
    appKeys: await server.rotor.internals.store.listAppKeys(victim.id),
    alice: await server.rotor.internals.store.findSubject(victim.id, 'alice'),
    sessions: await server.rotor.internals.store.listSessions(victim.id, 'alice'),
  });

  beforeAll(async () => {
    server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'warn' } });
    port = Number(new URL(server.url).port);
    for (const target of [server.rotor.apps, server.rotor.subjects] as unknown as Record<string, unknown>[]) {
      const proto = Object.getPrototypeOf(target) as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const original = proto[name];
        if (name === 'constructor' || typeof original !== 'function') continue;
        target[name] = function (this: unknown, ...args: unknown[]) {
          if (armed) reached.push(`${target === (server.rotor.apps as unknown) ? 'apps' : 'subjects'}.${name}`);
          return (original as (...a: unknown[]) => unknown).apply(this, args);
        };
      }
    }
  });
  afterAll(async () => { await server?.close(); });

  it('S2-01 the suite covers every route src/http/admin/routes.ts registers, and the server serves them', async () => {
    const routes = registeredAdminRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(13);
    for (const route of routes) {
      expect(CASES[route], `${route} needs a case in admin_paths.test.ts`).toBeDefined();
      const [method, url] = route.split(' ') as [string, string];
      expect(server.app.hasRoute({ method, url }), route).toBe(true);
    }
    expect(Object.keys(CASES).sort()).toEqual([...routes].sort());
  });

  for (const route of allRoutes()) {
    const [method, pattern] = route.split(' ') as [string, string];

    it(`S2-01 ${route}: no spelling gets past the admin check without the token (none, wrong, doubled)`, async () => {
      const spec = caseOf(route);
      await newVictim();
      const params = { ...(await sharedParams()), ...spec.target?.() };
      const path = fill(pattern, params);
      const before = await snapshot();
      const problems: string[] = [];
      reached.length = 0;
      for (const spelling of spellingsOf(path, port)) {
        for (const auth of ['none', 'wrong', 'doubled'] as const) {
          armed = true;
          const res = await send(port, request(method, spelling.target, auth, spec.body?.(++counter, auth), spelling.requestLine));
          armed = false;
          const label = `${auth} ${spelling.name} ${JSON.stringify(spelling.target)} → ${res.status}`;
          if (reached.length > 0) problems.push(`${label}: reached ${reached.splice(0).join(', ')}`);
          if (res.status >= 200 && res.status < 300) problems.push(`${label}: served`);
          else if (res.status === 0 || res.status >= 500) problems.push(`${label}: no answer or a server error`);
          else if (spelling.same && res.status !== 401) problems.push(`${label}: the router takes this for ${route}, so it must be 401`);
          else if (![400, 401, 404, 405].includes(res.status)) problems.push(`${label}: unexpected status`);
          if (res.status === 401) {
            if (!/^application\/problem\+json/.test(res.headers['content-type'] ?? '')) problems.push(`${label}: 401 not problem+json`);
            else if (method !== 'HEAD' && JSON.parse(res.body).code !== 'unauthorized') problems.push(`${label}: 401 code ${res.body}`);
            if (res.headers['www-authenticate'] !== 'Bearer realm="rotor"') problems.push(`${label}: no WWW-Authenticate`);
          }
        }
      }
      if ((await snapshot()) !== before) problems.push('side effect: the victim app, its signing keys, its app keys, its subject or its sessions changed');
      expect(problems).toEqual([]);
    });

    it(`S2-01 ${route}: with the admin token every spelling the router matches is served`, async () => {
      const spec = caseOf(route);
      await newVictim();
      const problems: string[] = [];
      for (const spelling of spellingsOf(fill(pattern, await sharedParams()), port)) {
        const params = { ...(await sharedParams()), ...(await spec.fresh?.(server, ++counter)) };
        const target = spellingsOf(fill(pattern, params), port).find((s) => s.name === spelling.name)!;
        const res = await send(port, request(method, target.target, 'right', spec.body?.(++counter, 'right'), target.requestLine));
        const label = `${spelling.name} ${JSON.stringify(target.target)} → ${res.status}`;
        if (res.status === 0 || res.status >= 500) problems.push(`${label}: no answer or a server error`);
        else if (res.status === 401) problems.push(`${label}: the right token was refused`);
        else if (spelling.same && spec.expect > 0 && res.status !== spec.expect) problems.push(`${label}: expected ${spec.expect}`);
        else if (spelling.same && res.headers['cache-control'] !== 'no-store') problems.push(`${label}: no Cache-Control: no-store`);
      }
      expect(problems).toEqual([]);
    });
  }

  it('S2-01 405 Allow is computed from the path the router matched (encoded, absolute form)', async () => {
    for (const target of ['/v1/refresh', '/v1/%72efresh', `http://evil.example/v1/refresh`, 'HTTP://evil.example/v1/%72efresh?x=1']) {
      const res = await send(port, request('GET', target, 'none', undefined));
      expect(res.status, target).toBe(405);
      expect(res.headers.allow, target).toBe('POST');
    }
    // What the router does not match is 404, not 405: no Allow computed from a path the router never saw.
    for (const target of ['/v1/refresh/', '//v1/refresh', '/V1/refresh', '/v1/./refresh', '/v1/refresh;x']) {
      const res = await send(port, request('GET', target, 'none', undefined));
      expect(res.status, target).toBe(404);
      expect(res.headers.allow, target).toBeUndefined();
    }
  });

  it('S2-01 log lines carry the path only, also for absolute-form targets (no query, no userinfo, no fragment)', async () => {
    const debug = await startTestServer();
    try {
      const debugPort = Number(new URL(debug.url).port);
      for (const target of ['/v1/refresh?refreshToken=rt_SECRETQUERY', 'http://user:SECRETPASS@evil.example/v1/refresh?refreshToken=rt_SECRETQUERY', '/v1/refresh#SECRETFRAG', 'http://evil.example?refreshToken=rt_SECRETQUERY']) {
        const res = await send(debugPort, request('GET', target, 'none', undefined));
        expect(res.status, target).toBeLessThan(500);
      }
      const lines = debug.logs.join('');
      expect(lines).not.toMatch(/SECRET/);
      const paths = debug.logs.map((l) => JSON.parse(l)).filter((l) => l.req?.path !== undefined).map((l) => l.req.path);
      expect(paths).toContain('/v1/refresh');
      expect(paths).toContain('/');
      expect(paths.every((p: string) => p.startsWith('/'))).toBe(true);
    } finally {
      await debug.close();
    }
  });

  it('S2-01 an admin route registered outside the admin scope fails loudly at startup', async () => {
    const app = Fastify();
    guardAdminRoutes(app);
    app.register(async (scope) => { scope.get('/admin/backdoor', async () => ({ ok: true })); });
    await expect(app.ready()).rejects.toThrow(/admin/);
    await app.close().catch(() => undefined);
    for (const url of ['/Admin/x', '/ADMIN', '/admin']) {
      const root = Fastify();
      guardAdminRoutes(root);
      expect(() => root.get(url, async () => ({ ok: true })), url).toThrow(/admin route declared outside/);
      await root.close();
    }
    const fine = Fastify();
    guardAdminRoutes(fine);
    fine.get('/administrators', async () => ({ ok: true }));
    await fine.ready();
    await fine.close();
  });
});
