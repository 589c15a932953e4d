import { createHash, randomUUID } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { SignJWT, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/cli.js';
import { createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The real OAuth client libraries, unmodified, against a real Rotor (issue 15): openid-client 6 and
 * oauth4webapi 3 discover an app's RFC 8414 metadata (`algorithm: 'oauth2'`), refresh with
 * client_secret_basic and client_secret_post, validate the access token per RFC 9068, revoke and
 * introspect; oauth4webapi refreshes with DPoP, nonce round included.
 */
describe('real OAuth client libraries', () => {
  let server: TestServer;
  let issuerBase: string;
  beforeAll(async () => {
    const port = await freePort();
    issuerBase = `http://127.0.0.1:${port}`;
    // The issuer must be the URL the libraries fetch (RFC 8414 §3.3): the server's own.
    server = await startTestServer({ port, env: { ROTOR_ISSUER: issuerBase } });
  });
  afterAll(async () => { await server.close(); });

  const insecure = { [oauth.allowInsecureRequests]: true };

  async function discovered(appId: string) {
    const issuer = new URL(`${issuerBase}/apps/${appId}`);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
    return as;
  }

  it('openid-client: discovery, refresh with client_secret_basic and client_secret_post, introspection and revocation', async () => {
    const app = await createApp(server, { name: 'lib-openid', public: false, policy: { reuseGrace: 0 } });
    for (const auth of [client.ClientSecretBasic(app.appKey), client.ClientSecretPost(app.appKey)]) {
      const config = await client.discovery(new URL(`${issuerBase}/apps/${app.id}`), app.id, undefined, auth, {
        algorithm: 'oauth2', execute: [client.allowInsecureRequests],
      });
      expect(config.serverMetadata().issuer).toBe(`${issuerBase}/apps/${app.id}`);
      const pair = await issue(server, app);
      const tokens = await client.refreshTokenGrant(config, pair.refreshToken);
      expect(tokens.token_type).toBe('bearer'); // openid-client lower-cases it
      expect(tokens.refresh_token).toBeTruthy();
      const introspected = await client.tokenIntrospection(config, tokens.access_token);
      expect(introspected).toMatchObject({ active: true, client_id: app.id, token_type: 'Bearer', aud: app.id, iss: `${issuerBase}/apps/${app.id}` });
      await client.tokenRevocation(config, tokens.refresh_token!);
      expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    }
  });

  it('oauth4webapi: refresh, then validateJwtAccessToken accepts the access token (RFC 9068), and one of another app is refused', async () => {
    const app = await createApp(server, { name: 'lib-o4w', public: false });
    const other = await createApp(server, { name: 'lib-o4w-other' });
    const as = await discovered(app.id);
    const c: oauth.Client = { client_id: app.id };
    const pair = await issue(server, app);
    const response = await oauth.refreshTokenGrantRequest(as, c, oauth.ClientSecretBasic(app.appKey), pair.refreshToken, insecure);
    const tokens = await oauth.processRefreshTokenResponse(as, c, response);
    const request = new Request('https://api.example/resource', { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const claims = await oauth.validateJwtAccessToken(as, request, app.id, insecure);
    expect(claims).toMatchObject({ iss: as.issuer, aud: app.id, client_id: app.id, sub: 'alice' });
    // A resource server of the other app, configured from its own discovery, refuses this app's token.
    const otherAs = await discovered(other.id);
    await expect(oauth.validateJwtAccessToken(otherAs, request, other.id, insecure)).rejects.toThrow();
  });

  it('oauth4webapi with DPoP: a nonce round, a bound session, cnf.jkt checked by validateJwtAccessToken; no key, no refresh', async () => {
    const app = await createApp(server, { name: 'lib-dpop', policy: { dpopNonce: true, reuseGrace: 0 } });
    const as = await discovered(app.id);
    expect(as.dpop_signing_alg_values_supported).toContain('ES256');
    const c: oauth.Client = { client_id: app.id };
    const keyPair = await oauth.generateKeyPair('ES256');
    const DPoP = oauth.DPoP(c, keyPair);
    const pair = await issue(server, app);
    const refresh = () => oauth.refreshTokenGrantRequest(as, c, oauth.None(), pair.refreshToken, { DPoP, ...insecure });
    let tokens: oauth.TokenEndpointResponse;
    try {
      tokens = await oauth.processRefreshTokenResponse(as, c, await refresh());
      throw new Error('expected a use_dpop_nonce challenge first');
    } catch (err) {
      // RFC 9449 §8: the handle has kept the nonce; the retry carries it.
      expect(oauth.isDPoPNonceError(err)).toBe(true);
      tokens = await oauth.processRefreshTokenResponse(as, c, await refresh());
    }
    expect(tokens.token_type).toBe('dpop');
    // A resource server checks the token with the proof of the same key (htm, htu, ath; RFC 9449 §7).
    const jwk = await exportJWK(keyPair.publicKey);
    const resource = 'https://api.example/resource';
    const ath = createHash('sha256').update(tokens.access_token).digest('base64url');
    const resourceProof = await new SignJWT({ htm: 'GET', htu: resource, ath, jti: randomUUID() })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk }).setIssuedAt().sign(keyPair.privateKey);
    const request = new Request(resource, { headers: { authorization: `DPoP ${tokens.access_token}`, dpop: resourceProof } });
    const claims = await oauth.validateJwtAccessToken(as, request, app.id, insecure);
    expect((claims as { cnf?: { jkt?: string } }).cnf?.jkt).toBeTruthy();
    // The session is bound now: a refresh without the key is refused.
    const bare = await fetch(`${issuerBase}/oauth2/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: app.id }),
    });
    expect(bare.status).toBe(400);
    expect((await bare.json()).error).toBe('invalid_dpop_proof');
  });
});
