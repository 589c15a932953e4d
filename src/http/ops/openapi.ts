/** A compact OpenAPI 3.1 description of the native, OAuth and admin APIs (docs/api.md has the prose). */
export function openApiDocument(issuer: string): Record<string, unknown> {
  const json = (schema: Record<string, unknown>) => ({ content: { 'application/json': { schema } } });
  const problem = { description: 'Error (application/problem+json with a stable `code`)' };
  const tokenPair = {
    type: 'object',
    required: ['accessToken', 'tokenType', 'expiresIn', 'sessionId'],
    properties: {
      accessToken: { type: 'string' }, tokenType: { enum: ['Bearer', 'DPoP'] }, expiresIn: { type: 'integer' },
      refreshToken: { type: 'string' }, refreshExpiresIn: { type: 'integer' }, sessionId: { type: 'string' },
    },
  };
  const appKey = [{ appKey: [] }];
  const admin = [{ adminToken: [] }];
  const op = (summary: string, extra: Record<string, unknown> = {}) => ({ summary, responses: { '200': { description: 'OK' }, default: problem }, ...extra });
  const dpopHeader = { name: 'DPoP', in: 'header', required: false, schema: { type: 'string' }, description: 'RFC 9449 proof: required for a bound session or an app whose policy dpop is required' };
  const origin = { '403': { description: 'origin_not_allowed: a browser Origin not allowed for the app (nothing consumed)' } };
  return {
    openapi: '3.1.0',
    info: { title: 'Rotor', version: '0.1.0', description: 'Token renewal service: sessions, rotating refresh tokens, JWKS, revocation.' },
    servers: [{ url: issuer }],
    components: {
      securitySchemes: {
        appKey: { type: 'http', scheme: 'bearer', description: 'An app key' },
        adminToken: { type: 'http', scheme: 'bearer', description: 'ROTOR_ADMIN_TOKEN' },
        client: { type: 'http', scheme: 'basic', description: 'OAuth client: app id or name, app key' },
      },
      schemas: { TokenPair: tokenPair },
    },
    paths: {
      '/v1/apps/{app}/sessions': {
        post: op('Issue a session', { security: appKey, requestBody: json({ type: 'object', required: ['subject'], properties: { subject: { type: 'string' }, claims: { type: 'object' }, ip: { type: 'string' }, userAgent: { type: 'string' }, audience: { type: 'string' }, dpopJkt: { type: 'string', description: 'RFC 7638 thumbprint: binds the session to the client key' } } }), responses: { '201': { description: 'Created', ...json(tokenPair) }, default: problem } }),
        get: op('List a subject\'s sessions', { security: appKey, parameters: [{ name: 'subject', in: 'query', required: true, schema: { type: 'string' } }] }),
      },
      '/v1/apps/{app}/login': { post: op('Log in with a password', { requestBody: json({ type: 'object', required: ['username', 'password'] }) }) },
      '/v1/refresh': { post: op('Refresh a session (a confidential app\'s token needs its app key)', { parameters: [dpopHeader], requestBody: json({ type: 'object', required: ['refreshToken'], properties: { refreshToken: { type: 'string' }, ip: { type: 'string' }, userAgent: { type: 'string' } } }), responses: { '200': { description: 'OK', ...json(tokenPair) }, '401': { description: 'invalid_app_key, invalid_dpop_proof or use_dpop_nonce (with DPoP-Nonce)' }, ...origin, default: problem } }) },
      '/v1/revoke': { post: op('Revoke the session of a token (RFC 7009 semantics)') },
      '/v1/introspect': { post: op('Introspect a token (RFC 7662 semantics)', { security: appKey }) },
      '/v1/apps/{app}/sessions/{sessionId}': { delete: op('Revoke one session', { security: appKey }) },
      '/v1/apps/{app}/subjects/{subject}/sessions': { delete: op('Revoke every session of a subject', { security: appKey }) },
      '/v1/apps/{app}/jwks.json': { get: op('The app\'s JWKS') },
      '/.well-known/jwks.json': { get: op('Every app\'s published keys') },
      '/oauth2/token': { post: op('OAuth 2.0 refresh_token grant (form-encoded); token_type Bearer or DPoP', { parameters: [dpopHeader] }) },
      '/oauth2/revoke': { post: op('RFC 7009 revocation') },
      '/oauth2/introspect': { post: op('RFC 7662 introspection') },
      '/.well-known/oauth-authorization-server': { get: op('RFC 8414 metadata of the shared endpoints (no jwks_uri)') },
      '/.well-known/oauth-authorization-server/apps/{appId}': { get: op('RFC 8414 metadata of one app: its issuer, its own JWKS, DPoP algorithms') },
      '/sdk/rotor-client.js': { get: op('The browser client @rotor/client, one ES module') },
      '/admin/apps': { post: op('Create an app', { security: admin }), get: op('List apps', { security: admin }) },
      '/admin/apps/{app}': { get: op('Show an app', { security: admin }), patch: op('Update an app', { security: admin }), delete: op('Delete an app', { security: admin }) },
      '/admin/apps/{app}/app-keys': { post: op('Create an app key', { security: admin }) },
      '/admin/apps/{app}/app-keys/{id}': { delete: op('Revoke an app key', { security: admin }) },
      '/admin/apps/{app}/keys': { get: op('List signing keys', { security: admin }) },
      '/admin/apps/{app}/keys/rotate': { post: op('Rotate the signing key', { security: admin }) },
      '/admin/apps/{app}/keys/{kid}/revoke': { post: op('Revoke a signing key', { security: admin }) },
      '/admin/apps/{app}/subjects/{subject}': { put: op('Create or update a subject', { security: admin }), get: op('Show a subject', { security: admin }), delete: op('Delete a subject', { security: admin }) },
      '/admin/apps/{app}/subjects': { get: op('List subjects with their live sessions, a page at a time (?cursor=&limit=)', { security: admin }) },
      '/admin/apps/{app}/sessions': { get: op('List sessions newest first, of one subject with ?subject= (?cursor=&limit=)', { security: admin }) },
      '/admin/apps/{app}/sessions/{id}': { delete: op('Revoke a session', { security: admin }) },
      '/admin/apps/{app}/subjects/{subject}/sessions': { delete: op('Revoke every session of a subject', { security: admin }) },
      '/admin/events': { get: op('Security events of every instance, newest last (?since=&limit=)', { security: admin }) },
      '/admin/stats': { get: op('The last hour of refreshes by outcome, reuse detections and p99 latency, in 10-second steps', { security: admin }) },
      '/console': { get: op('The web console (served when ROTOR_ADMIN_TOKEN is set; signs in with it)') },
      // Dialects (SPEC §4.4; docs/dialects.md): each answers only for apps of its profile, in its own envelope.
      '/v2/auth/session': { get: op('Verifik: renew the session of the access token in Authorization', { tags: ['verifik'] }) },
      '/v2/auth/renew-and-revoke': { post: op('Verifik: revoke every session of the subject, issue a new one', { tags: ['verifik'] }) },
      '/app/{app_id}': { get: op('JWTPlus: app info', { tags: ['jwtplus'] }) },
      '/app/{app_id}/sign': { post: op('JWTPlus: issue a token pair', { tags: ['jwtplus'] }) },
      '/app/{app_id}/renew': { post: op('JWTPlus: renew with the refresh token', { tags: ['jwtplus'] }) },
      '/app/{app_id}/verify': { post: op('JWTPlus: verify an auth token', { tags: ['jwtplus'] }) },
      '/app/{app_id}/logout': { post: op('JWTPlus: revoke the session of a token', { tags: ['jwtplus'] }) },
      '/app/{app_id}/get-session': { post: op('JWTPlus: a subject\'s sessions', { tags: ['jwtplus'] }) },
      '/app/{app_id}/pub-keys': { get: op('JWTPlus: public keys', { tags: ['jwtplus'] }) },
      '/api/v2/auth/token': { put: op('floLIVE: renew with the access and refresh token pair', { tags: ['flolive'] }) },
      '/auth/api/v1/authentication-management/session': {
        patch: op('FIB: renew with the refresh token in Authorization', { tags: ['fib'] }),
        post: op('FIB: Ed25519 login', { tags: ['fib'] }),
      },
      '/auth/api/v1/authentication-management/logout': { post: op('FIB: logout', { tags: ['fib'] }) },
      '/v1/refreshToken': { post: op('Abitmedia: renew (JSON, form or multipart)', { tags: ['abitmedia'] }) },
      '/v1/auth': { get: op('Abitmedia: Basic login', { tags: ['abitmedia'] }) },
      '/healthz': { get: op('Liveness') },
      '/readyz': { get: op('Readiness: the store answers') },
      '/metrics': { get: op('Prometheus metrics') },
    },
  };
}
