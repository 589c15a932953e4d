import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * SPEC §2.8: errors in the API's own envelope, 405 included (an acceptance audit found every API's 405
 * in the native problem body). The status and `Allow` stay HTTP's; the body is the API's.
 */
describe('405 for a known path, in the envelope of the API it belongs to', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  const APP = '01ABCDEFGHJKMNPQRSTVWXYZ00';
  const cases: [string, string, string, (body: any) => void][] = [
    ['GET', '/oauth2/token', 'POST', (b) => expect(b).toEqual({ error: 'invalid_request', error_description: 'this endpoint answers POST' })],
    ['DELETE', '/oauth2/%74oken', 'POST', (b) => expect(b.error).toBe('invalid_request')],
    ['DELETE', '/v2/auth/session', 'GET, POST', (b) => expect(b).toEqual({ code: 'MethodNotAllowed', message: 'this endpoint answers GET, POST' })],
    ['GET', `/app/${APP}/sign`, 'POST', (b) => expect(b).toEqual({ errors: 'this endpoint answers POST' })],
    ['POST', '/api/v2/auth/token', 'PUT', (b) => expect(b).toMatchObject({ errorCode: 'REQ_1001', content: '', pageable: '' })],
    ['GET', '/auth/api/v1/authentication-management/session', 'PATCH, POST', (b) => expect(b).toMatchObject({ status: { code: 405, name: 'METHOD_NOT_ALLOWED' }, data: null })],
    ['GET', '/v1/refreshToken', 'POST', (b) => expect(b).toEqual({ success: false, status: 405, message: 'Método no permitido' })],
    ['GET', '/v1/refresh', 'POST', (b) => expect(b).toMatchObject({ code: 'method_not_allowed', status: 405 })],
    // An escaped slash inside a parameter is one segment to the router (app id "a/b"), so to the envelope too.
    ['GET', '/app/a%2Fb/sign', 'POST', (b) => expect(b).toEqual({ errors: 'this endpoint answers POST' })],
    // A path longer than a log line's 200 characters is still matched whole.
    ['GET', `/app/${'x'.repeat(1500)}/sign`, 'POST', (b) => expect(b).toEqual({ errors: 'this endpoint answers POST' })],
  ];
  for (const [method, path, allow, check] of cases) {
    it(`${method} ${path.slice(0, 60)}: 405, Allow: ${allow}, the API's own body`, async () => {
      const res = await server.call(method, path);
      expect(res.status, res.text).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      check(res.body);
    });
  }

  it('an unknown path is still the native 404, whatever its prefix looks like', async () => {
    const res = await server.call('GET', '/oauth2/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('not_found');
  });
});
