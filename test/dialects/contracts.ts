import { expect } from 'vitest';
import { admin, type createApp, type TestResponse, type TestServer } from '../helpers/server.js';

/**
 * How the shared dialect contract (contract.test.ts) talks to each dialect: its renewal call, the
 * other calls that decide a token or a login, and its envelope for the answers every dialect owes.
 * One entry per dialect in src/dialects/index.ts; the suite fails for a dialect that has none.
 */
export interface DialectContract {
  /** Policy for the contract's apps (e.g. JWTPlus refresh tokens usable at once). */
  policy?: Record<string, unknown>;
  /** Gives the subject the credential this dialect logs in with, where it has a login. */
  enrol?(server: TestServer, app: App): Promise<void>;
  /** The dialect's renewal call, presenting `pair` (its own, or a foreign one). */
  renew(server: TestServer, app: App, pair: Pair): Promise<TestResponse>;
  /** Every call of the dialect that must answer 503 while the store is down (renewal first). */
  deciding(server: TestServer, app: App, pair: Pair): Promise<TestResponse>[];
  /** The exact 503 body (with `Retry-After: 1`). */
  unavailable: string;
  /** A foreign token (another dialect's, a native one) refused at the renewal call, in this envelope. */
  refused(res: TestResponse): void;
  /**
   * A body that is not JSON at the renewal call (or the login), and the exact answer; `body: null` where
   * the dialect reads no body at all (Verifik: the token is in Authorization, any body is ignored).
   */
  malformed: { send(server: TestServer, app: App, pair: Pair): Promise<TestResponse>; status: number; body: string | null };
  /** The renewal call with a body over 64 KiB (`pad`), and the exact answer (413). */
  oversized: { send(server: TestServer, app: App, pair: Pair, pad: string): Promise<TestResponse>; body: string };
}

export type App = Awaited<ReturnType<typeof createApp>>;
export interface Pair { accessToken: string; refreshToken: string; sessionId: string }

export const SUBJECT = 'alice@wonderland.space';
/** SPEC §4.4's FIB example: the key and its signature of SUBJECT's login digest. */
const FIB_PUBLIC = '7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac';
const FIB_SIG = '57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a';
const FIB = '/auth/api/v1/authentication-management';
const PASSWORD = 'contraseña segura 1';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
const notJson = { body: '{"refresh', headers: { 'content-type': 'application/json' } };
const fibError = (code: number, name: string, message: string) => `{"status":{"code":${code},"name":"${name}","message":"${message}"},"data":null}`;

export const CONTRACTS: Record<string, DialectContract> = {
  verifik: {
    renew: (server, _app, pair) => server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: pair.accessToken } }),
    deciding: (server, _app, pair) => [
      server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: pair.accessToken } }),
      server.call('POST', '/v2/auth/renew-and-revoke', { headers: { authorization: pair.accessToken } }),
    ],
    unavailable: '{"code":"ServiceUnavailable","message":"the token store is unavailable; retry shortly"}',
    refused: (res) => {
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ code: 'Unauthorized', message: 'Invalid or expired token.' });
    },
    malformed: {
      send: (server, _app, pair) => server.call('POST', '/v2/auth/session?origin=refresh', { ...notJson, headers: { ...notJson.headers, authorization: pair.accessToken } }),
      status: 200, body: null,
    },
    oversized: {
      send: (server, _app, pair, pad) => server.call('POST', '/v2/auth/session?origin=refresh', { json: { pad }, headers: { authorization: pair.accessToken } }),
      body: '{"code":"PayloadTooLarge","message":"the request body is larger than 64 KiB"}',
    },
  },
  jwtplus: {
    policy: { refreshNotBefore: 0 },
    renew: (server, app, pair) => server.call('POST', `/app/${app.id}/renew`, {
      json: { refresh_token: pair.refreshToken, ip: '::1', useragent: 'contract' }, headers: { authorization: app.appKey },
    }),
    deciding: (server, app, pair) => [
      server.call('POST', `/app/${app.id}/renew`, { json: { refresh_token: pair.refreshToken, ip: '::1', useragent: 'x' }, headers: { authorization: app.appKey } }),
      server.call('POST', `/app/${app.id}/verify`, { json: { token: pair.accessToken }, headers: { authorization: app.appKey } }),
      server.call('POST', `/app/${app.id}/logout`, { json: { token: pair.accessToken }, headers: { authorization: app.appKey } }),
    ],
    unavailable: '{"message":"error"}',
    // A token that is no JWT at all (a native opaque one) fails JWTPlus's field validation first.
    refused: (res) => {
      if (res.status === 400) expect(res.text).toBe('{"errors":[{"error_field":"refresh_token","error_message":"This field requires a valid jwt token."}]}');
      else expect({ status: res.status, body: res.text }).toEqual({ status: 404, body: '{"message":"invalid refresh token"}' });
    },
    malformed: {
      send: (server, app) => server.call('POST', `/app/${app.id}/renew`, { ...notJson, headers: { ...notJson.headers, authorization: app.appKey } }),
      status: 400, body: '{"errors":{"error_field":"","error_message":"invalid json format"}}',
    },
    oversized: {
      send: (server, app, pair, pad) => server.call('POST', `/app/${app.id}/renew`, {
        json: { refresh_token: pair.refreshToken, ip: '::1', useragent: 'x', pad }, headers: { authorization: app.appKey },
      }),
      body: '{"errors":"request body too large"}',
    },
  },
  flolive: {
    renew: (server, _app, pair) => server.call('PUT', '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: pair.refreshToken } }),
    deciding: (server, _app, pair) => [server.call('PUT', '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: pair.refreshToken } })],
    unavailable: '{"errorCode":"SYS_1003","errorMessage":"Service temporarily unavailable, retry shortly","content":"","pageable":""}',
    // A token that is no JWT at all (a native opaque one) is a malformed request (REQ_1001), a JWT of another's 401.
    refused: (res) => {
      expect([400, 401]).toContain(res.status);
      expect(res.body).toMatchObject({ errorCode: res.status === 401 ? 'AUTH_1002' : 'REQ_1001', content: '', pageable: '' });
    },
    malformed: {
      send: (server) => server.call('PUT', '/api/v2/auth/token', notJson),
      status: 400, body: '{"errorCode":"REQ_1001","errorMessage":"the request body is not valid JSON","content":"","pageable":""}',
    },
    oversized: {
      send: (server, _app, pair, pad) => server.call('PUT', '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: pair.refreshToken, pad } }),
      body: '{"errorCode":"REQ_1001","errorMessage":"the request body is larger than 64 KiB","content":"","pageable":""}',
    },
  },
  fib: {
    enrol: async (server, app) => {
      const res = await server.call('PUT', `/admin/apps/${app.name}/subjects/${SUBJECT}`, { json: { ed25519PublicKey: FIB_PUBLIC }, headers: admin });
      expect(res.status).toBe(200);
    },
    renew: (server, _app, pair) => server.call('PATCH', `${FIB}/session`, { headers: { authorization: `Bearer ${pair.refreshToken}` } }),
    deciding: (server, _app, pair) => [
      server.call('PATCH', `${FIB}/session`, { headers: { authorization: `Bearer ${pair.refreshToken}` } }),
      server.call('POST', `${FIB}/session`, { json: { email: SUBJECT, signature: FIB_SIG, authPublicKeyHex: FIB_PUBLIC } }),
      server.call('POST', `${FIB}/logout`, { headers: { authorization: `Bearer ${pair.accessToken}` } }),
    ],
    unavailable: fibError(503, 'SERVICE_UNAVAILABLE', 'Service temporarily unavailable, retry shortly'),
    refused: (res) => {
      expect(res.status).toBe(401);
      expect(res.text).toBe(fibError(401, 'UNAUTHORIZED', 'Invalid or expired token'));
    },
    malformed: { send: (server) => server.call('POST', `${FIB}/session`, notJson), status: 400, body: fibError(400, 'BAD_REQUEST', 'the request body is not valid JSON') },
    oversized: {
      send: (server, _app, pair, pad) => server.call('PATCH', `${FIB}/session`, { json: { pad }, headers: { authorization: `Bearer ${pair.refreshToken}` } }),
      body: fibError(413, 'PAYLOAD_TOO_LARGE', 'the request body is larger than 64 KiB'),
    },
  },
  abitmedia: {
    enrol: async (server, app) => {
      const res = await server.call('PUT', `/admin/apps/${app.name}/subjects/${SUBJECT}`, { json: { password: PASSWORD }, headers: admin });
      expect(res.status).toBe(200);
    },
    renew: (server, _app, pair) => server.call('POST', '/v1/refreshToken', { json: { refreshToken: pair.refreshToken } }),
    deciding: (server, _app, pair) => [
      server.call('POST', '/v1/refreshToken', { json: { refreshToken: pair.refreshToken } }),
      server.call('GET', '/v1/auth', { headers: { authorization: basic(SUBJECT, PASSWORD) } }),
    ],
    unavailable: '{"success":false,"status":503,"message":"Servicio no disponible temporalmente, intente de nuevo"}',
    refused: (res) => {
      expect(res.status).toBe(400);
      expect(res.text).toBe('{"success":false,"status":400,"message":"Token de refresco inválido o expirado"}');
    },
    // Abitmedia answers every unreadable refresh request as its one invalid-token 400.
    malformed: {
      send: (server) => server.call('POST', '/v1/refreshToken', notJson),
      status: 400, body: '{"success":false,"status":400,"message":"Token de refresco inválido o expirado"}',
    },
    oversized: {
      send: (server, _app, pair, pad) => server.call('POST', '/v1/refreshToken', { json: { refreshToken: pair.refreshToken, pad } }),
      body: '{"success":false,"status":413,"message":"La solicitud es demasiado grande"}',
    },
  },
};
