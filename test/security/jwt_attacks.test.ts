import { createHmac, createPublicKey, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SigningKey } from '../../src/crypto/signing_key.js';
import { createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * SECURITY-CASES §1 (J-rows) against every Rotor endpoint that decides on an access token: native and
 * OAuth introspection (the decision is `active`), and native revocation (nothing may be revoked).
 * After every case the control token still works (P4) and no 5xx was seen (P1).
 */
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const compact = (header: unknown, payload: unknown, signature: Buffer | string) =>
  `${b64(header)}.${b64(payload)}.${typeof signature === 'string' ? signature : signature.toString('base64url')}`;

describe('JWT / JOSE attacks (J-01 … J-26)', () => {
  let server: TestServer;
  const apps: Record<string, { id: string; name: string; appKey: string }> = {};
  const keys: Record<string, SigningKey> = {};
  let control: { accessToken: string; sessionId: string };
  let controlPayload: Record<string, any>;
  let canary: Server;
  let canaryHits = 0;
  let canaryPort = 0;

  beforeAll(async () => {
    server = await startTestServer();
    for (const alg of ['ES256', 'EdDSA', 'RS256', 'HS256']) {
      const name = `sec-${alg.toLowerCase()}`;
      apps[alg] = await createApp(server, { name, policy: { alg } });
      await issue(server, apps[alg] as any);
      keys[alg] = await server.rotor.internals.keyring.activeKey(await server.rotor.apps.get(name));
    }
    apps.B = await createApp(server, { name: 'sec-b' });
    control = await issue(server, apps.ES256 as any, 'u1');
    controlPayload = decodeJwtPart(control.accessToken, 1);
    canary = createServer((socket) => { canaryHits += 1; socket.destroy(); });
    await new Promise<void>((resolve) => canary.listen(0, '127.0.0.1', () => resolve()));
    canaryPort = (canary.address() as { port: number }).port;
  });
  afterAll(async () => {
    canary.close();
    await server.close();
  });

  /** The decisions of every verifying endpoint for one token, as seen by app `app`. */
  async function decisions(token: string, app = apps.ES256!, options: { revoke?: boolean } = {}): Promise<boolean[]> {
    const native = await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } });
    const oauth = await server.call('POST', '/oauth2/introspect', {
      form: { token }, headers: { authorization: `Basic ${Buffer.from(`${app.id}:${app.appKey}`).toString('base64')}` },
    });
    // Revoking with a hostile token must answer 200 and revoke nothing (checked by the control).
    const revoke = options.revoke ? await server.call('POST', '/v1/revoke', { json: { token } }) : null;
    for (const res of [native, oauth, ...(revoke ? [revoke] : [])]) {
      expect(res.status).toBeLessThan(500);
      expect(res.text).not.toMatch(/at .*\.js|SELECT|node_modules/);
    }
    if (revoke) expect(revoke.status).toBe(200);
    return [native.body.active === true, oauth.body.active === true];
  }

  async function expectRejected(token: string, app = apps.ES256!): Promise<void> {
    expect(await decisions(token, app, { revoke: true })).toEqual([false, false]);
    // P4 + P6: the control token is still alive (nothing was revoked by the hostile request).
    expect(await decisions(control.accessToken)).toEqual([true, true]);
  }

  const esHeader = () => decodeJwtPart(control.accessToken, 0);
  const signWith = (key: SigningKey, header: Record<string, unknown>, payload: unknown) => {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${key.sign(Buffer.from(input)).toString('base64url')}`;
  };

  it('control: the genuine token is accepted everywhere', async () => {
    expect(await decisions(control.accessToken)).toEqual([true, true]);
  });

  it('J-01 alg none in every spelling', async () => {
    const [, p, s] = control.accessToken.split('.') as [string, string, string];
    for (const alg of ['none', 'None', 'NONE', 'nOnE', ' none']) {
      const h = b64({ ...esHeader(), alg });
      await expectRejected(`${h}.${p}.`);
      await expectRejected(`${h}.${p}.${s}`);
    }
  });

  it('J-02 broken signatures', async () => {
    const [h, p, s] = control.accessToken.split('.') as [string, string, string];
    for (const token of [`${h}.${p}.`, `${h}.${p}`, `${h}.${p}.${s.slice(0, -4)}`, `${h}.${p}.${Buffer.alloc(16).toString('base64url')}`]) {
      await expectRejected(token);
    }
  });

  it('J-03 HS256 keyed with "" or "\\0", with unknown, empty or missing kid', async () => {
    for (const secret of ['', '\0']) {
      for (const kid of ['nope', '', undefined, esHeader().kid]) {
        const header: Record<string, unknown> = { alg: 'HS256', typ: 'at+jwt' };
        if (kid !== undefined) header.kid = kid;
        const input = `${b64(header)}.${b64(controlPayload)}`;
        await expectRejected(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`);
      }
    }
  });

  it('J-04 algorithm confusion: HMAC keyed with the public key in every encoding', async () => {
    for (const alg of ['ES256', 'EdDSA', 'RS256']) {
      const app = apps[alg]!;
      const pair = await issue(server, app as any, 'u1');
      const header = decodeJwtPart(pair.accessToken, 0);
      const payload = decodeJwtPart(pair.accessToken, 1);
      const jwks = (await server.call('GET', `/v1/apps/${app.name}/jwks.json`)).text;
      const jwk = JSON.parse(jwks).keys.find((k: any) => k.kid === header.kid);
      const pub = createPublicKey({ key: jwk, format: 'jwk' });
      const pem = pub.export({ format: 'pem', type: 'spki' }) as string;
      const materials: (string | Buffer)[] = [pem, pem.trimEnd(), ` ${pem}`, `\n${pem}`, pub.export({ format: 'der', type: 'spki' }), JSON.stringify(jwk), jwks, String(jwk.n ?? jwk.x)];
      if (alg === 'RS256') materials.push(pub.export({ format: 'pem', type: 'pkcs1' }) as string);
      for (const hs of ['HS256', 'HS384', 'HS512']) {
        for (const material of materials) {
          const input = `${b64({ ...header, alg: hs })}.${b64(payload)}`;
          const mac = createHmac(`sha${hs.slice(2)}`, material).update(input).digest('base64url');
          await expectRejected(`${input}.${mac}`, app);
        }
      }
    }
  });

  it('J-05 the alg must equal the alg registered for the kid (attacker signs with own key)', async () => {
    const attacker = {
      rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
      ec384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
      ed: generateKeyPairSync('ed25519').privateKey,
    };
    const variants: [string, string, (input: Buffer) => Buffer][] = [
      ['RS256', 'PS256', (i) => cryptoSign('sha256', i, { key: attacker.rsa, padding: 6 })],
      ['RS256', 'RS512', (i) => cryptoSign('sha512', i, attacker.rsa)],
      ['ES256', 'ES384', (i) => cryptoSign('sha384', i, { key: attacker.ec384, dsaEncoding: 'ieee-p1363' })],
      ['EdDSA', 'Ed25519', (i) => cryptoSign(null, i, attacker.ed)],
      ['EdDSA', 'eddsa', (i) => cryptoSign(null, i, attacker.ed)],
      ['HS256', 'RS256', (i) => cryptoSign('sha256', i, attacker.rsa)],
    ];
    for (const [registered, alg, signer] of variants) {
      const app = apps[registered]!;
      const pair = await issue(server, app as any, 'u1');
      const input = `${b64({ ...decodeJwtPart(pair.accessToken, 0), alg })}.${b64(decodeJwtPart(pair.accessToken, 1))}`;
      await expectRejected(`${input}.${signer(Buffer.from(input)).toString('base64url')}`, app);
    }
  });

  it('J-06 malformed alg values', async () => {
    for (const alg of [undefined, null, '', ['ES256'], 256, 'ES256 ', 'es256']) {
      const header: Record<string, unknown> = { ...esHeader() };
      if (alg === undefined) delete header.alg; else header.alg = alg;
      const input = `${b64(header)}.${b64(controlPayload)}`;
      await expectRejected(`${input}.${keys.ES256!.sign(Buffer.from(input)).toString('base64url')}`);
    }
  });

  it('J-07 / J-08 kid traversal and injection, also as objects, arrays, numbers and huge strings', async () => {
    const kids: unknown[] = ['../../../../../../dev/null', '/dev/null', '/proc/sys/kernel/randomize_va_space', '..%2f..%2fetc%2fpasswd',
      '....//....//x', 'k\u0000../x', "x' UNION SELECT '1';--", "x' OR '1'='1", "1';SELECT pg_sleep(5)--",
      "x' AND randomblob(1000000000)--", '|sleep 10', { $ne: null }, ['a'], 42, 'k'.repeat(40_000)];
    for (const kid of kids) {
      for (const secret of ['', '1', '2\n']) {
        const input = `${b64({ alg: 'HS256', kid })}.${b64(controlPayload)}`;
        await expectRejected(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`);
      }
    }
  });

  it('J-09 cross-tenant key substitution', async () => {
    // A token of app ES256 presented to app B: unknown there.
    expect(await decisions(control.accessToken, apps.B)).toEqual([false, false]);
    // A token naming B's kid but signed with A's key.
    const bKey = await server.rotor.internals.keyring.activeKey(await server.rotor.apps.get('sec-b'));
    const forged = signWith(keys.ES256!, { ...esHeader(), kid: bKey.kid }, controlPayload);
    await expectRejected(forged, apps.B);
    await expectRejected(forged);
  });

  it('J-10 embedded jwk is never trusted', async () => {
    const mine = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = mine.publicKey.export({ format: 'jwk' });
    const input = `${b64({ alg: 'ES256', jwk, typ: 'at+jwt' })}.${b64(controlPayload)}`;
    await expectRejected(`${input}.${cryptoSign('sha256', Buffer.from(input), { key: mine.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`);
    const oct = `${b64({ alg: 'HS256', jwk: { kty: 'oct', k: b64('secret') } })}.${b64(controlPayload)}`;
    await expectRejected(`${oct}.${createHmac('sha256', 'secret').update(oct).digest('base64url')}`);
  });

  it('J-11 / J-12 jku, x5u, x5c are never fetched or trusted (the canary gets no connection)', async () => {
    for (const extra of [
      { jku: `http://127.0.0.1:${canaryPort}/jwks.json` }, { x5u: `http://127.0.0.1:${canaryPort}/` },
      { jku: 'http://169.254.169.254/' }, { jku: 'file:///etc/passwd' }, { x5c: ['MIIB'] }, { x5t: 'abc' },
    ]) {
      await expectRejected(signWith(keys.ES256!, { ...esHeader(), ...extra }, controlPayload));
    }
    expect(canaryHits).toBe(0);
  });

  it('J-13 psychic signatures', async () => {
    const [h, p] = control.accessToken.split('.') as [string, string];
    for (const sig of ['A'.repeat(86), 'MAYCAQACAQA', '_____wAAAAD__________7zm-q2nF56E87nKwvxjJVH_____AAAAAP__________vOb6racXnoTzucrC_GMlUQ',
      Buffer.alloc(63).toString('base64url'), Buffer.alloc(65).toString('base64url')]) {
      await expectRejected(`${h}.${p}.${sig}`);
    }
  });

  it('J-14 malleated copies: (r, n−s), a DER re-encoding, low bits of the last character', async () => {
    const [h, p, s] = control.accessToken.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const sv = BigInt(`0x${sig.subarray(32).toString('hex')}`);
    const flipped = Buffer.concat([sig.subarray(0, 32), Buffer.from((n - sv).toString(16).padStart(64, '0'), 'hex')]);
    await expectRejected(`${h}.${p}.${flipped.toString('base64url')}`);
    const last = s.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[alphabet.indexOf(last) ^ 1] as string; // same top bits, different unused low bit
    await expectRejected(`${h}.${p}.${s.slice(0, -1)}${sibling}`);
    const der = Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), sig.subarray(0, 32), Buffer.from([0x02, 0x20]), sig.subarray(32)]);
    await expectRejected(`${h}.${p}.${der.toString('base64url')}`);
  });

  it('J-15 tampered payloads under the original signature, not reflected', async () => {
    const [h, , s] = control.accessToken.split('.') as [string, string, string];
    for (const change of [{ sub: 'u2' }, { admin: true }, { exp: controlPayload.exp + 1 }]) {
      const token = `${h}.${b64({ ...controlPayload, ...change })}.${s}`;
      await expectRejected(token);
      const res = await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${apps.ES256!.appKey}` } });
      expect(res.text).not.toContain('u2');
    }
  });

  it('J-16 non-canonical base64url', async () => {
    const [h, p, s] = control.accessToken.split('.') as [string, string, string];
    const std = (x: string) => Buffer.from(x, 'base64url').toString('base64');
    for (const token of [`${h}.${p}.${std(s)}`, `${h}=.${p}.${s}`, ` ${control.accessToken}`, `${control.accessToken}\r\n`,
      `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`, `${std(h)}.${std(p)}.${std(s)}`]) {
      await expectRejected(token);
    }
  });

  it('J-17 wrong segment counts and non-object payloads signed with the real key', async () => {
    const [h, p, s] = control.accessToken.split('.') as [string, string, string];
    for (const token of [h, `${h}.${p}.${s}.${s}`, `${h}.${p}.${s}.${s}.${s}`, `..`, `${h}..${s}`]) await expectRejected(token);
    for (const payload of [[], [{ exp: controlPayload.exp }], 'x', null]) {
      await expectRejected(signWith(keys.ES256!, esHeader(), payload));
    }
    await expectRejected(signWith(keys.ES256!, ['not', 'an', 'object'] as any, controlPayload));
  });

  it('J-18 / J-19 JWE headers and JWS JSON serialisation are refused without work', async () => {
    await expectRejected(`${b64({ alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 2147483647 })}.${b64('x')}.${b64('x')}.${b64('x')}.${b64('x')}`);
    await expectRejected(`${b64({ alg: 'ES256', zip: 'DEF' })}.${b64(controlPayload)}.${b64('x')}`);
    const [h, p, s] = control.accessToken.split('.') as [string, string, string];
    await expectRejected(JSON.stringify({ protected: h, payload: p, signature: s }));
    await expectRejected(JSON.stringify({ payload: p, signatures: [] }));
  });

  it('J-20 crit in any form', async () => {
    for (const extra of [{ crit: ['exp'] }, { crit: ['x-u'], 'x-u': 1 }, { crit: [] }, { crit: ['b64'], b64: false }, { crit: ['missing'] }, { crit: 'exp' }]) {
      await expectRejected(signWith(keys.ES256!, { ...esHeader(), ...extra }, controlPayload));
    }
  });

  it('J-21 duplicate members: the only parser takes the last, so "none" last is refused', async () => {
    const header = `{"alg":"ES256","typ":"at+jwt","kid":"${esHeader().kid}","alg":"none"}`;
    const input = `${Buffer.from(header).toString('base64url')}.${b64(controlPayload)}`;
    await expectRejected(`${input}.${keys.ES256!.sign(Buffer.from(input)).toString('base64url')}`);
  });

  it('J-22 oversized tokens and JSON bombs answer 4xx, fast', async () => {
    const big = `${b64(esHeader())}.${'A'.repeat(1_000_000)}.x`;
    const res = await server.call('POST', '/v1/introspect', { json: { token: big }, headers: { authorization: `Bearer ${apps.ES256!.appKey}` } });
    expect(res.status).toBe(413);
    const deep = `${Buffer.from('['.repeat(100_000)).toString('base64url')}.${b64(controlPayload)}.x`;
    await expectRejected(deep.slice(0, 8000));
    const huge = await fetch(`${server.url}/v1/introspect`, { method: 'POST', headers: { authorization: `Bearer ${'x'.repeat(20_000)}`, 'content-type': 'application/json' }, body: '{}' });
    expect([401, 431]).toContain(huge.status);
  });

  it('J-23 time: exp is exclusive with no leeway, nbf has 30 s, odd types are refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>) => signWith(keys.ES256!, esHeader(), { ...controlPayload, ...claims });
    await expectRejected(sign({ exp: now }));
    await expectRejected(sign({ exp: now - 1 }));
    expect(await decisions(sign({ exp: now + 5 }))).toEqual([true, true]);
    expect(await decisions(sign({ nbf: now + 10 }))).toEqual([true, true]);
    await expectRejected(sign({ nbf: now + 31 + 5 }));
    for (const exp of ['9999999999', 1e400, -1, null, true, [1], undefined]) {
      const claims: Record<string, unknown> = { ...controlPayload, exp };
      if (exp === undefined) delete claims.exp;
      await expectRejected(signWith(keys.ES256!, esHeader(), claims));
    }
  });

  it('J-24 token-kind confusion: a refresh token is not an access token and vice versa; typ is required', async () => {
    const pair = await issue(server, apps.ES256 as any, 'u1');
    expect((await decisions(pair.refreshToken)).includes(true)).toBe(true); // introspection tells what it is
    const asAccess = await server.call('POST', '/v1/introspect', { json: { token: pair.refreshToken }, headers: { authorization: `Bearer ${apps.ES256!.appKey}` } });
    expect(asAccess.body.tokenType).toBe('refresh_token');
    const refreshed = await server.call('POST', '/v1/refresh', { json: { refreshToken: pair.accessToken } });
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.code).toBe('invalid_refresh_token');
    const grant = await server.call('POST', '/oauth2/token', {
      form: { grant_type: 'refresh_token', refresh_token: pair.accessToken },
      headers: { authorization: `Basic ${Buffer.from(`${apps.ES256!.id}:${apps.ES256!.appKey}`).toString('base64')}` },
    });
    expect(grant.body.error).toBe('invalid_grant');
    for (const typ of [undefined, 'JWT', 'at+JWT']) {
      const header: Record<string, unknown> = { ...esHeader(), typ };
      if (typ === undefined) delete header.typ;
      await expectRejected(signWith(keys.ES256!, header, controlPayload));
    }
  });

  it('J-25 iss and aud must match exactly', async () => {
    for (const iss of [['https://evil', 'http://rotor.test'], 'http://rotor.test/', 'HTTP://ROTOR.TEST', 'https://rotor.test', undefined]) {
      const claims: Record<string, unknown> = { ...controlPayload, iss };
      if (iss === undefined) delete claims.iss;
      await expectRejected(signWith(keys.ES256!, esHeader(), claims));
    }
    const withAud = await issue(server, apps.ES256 as any, 'u1', { audience: 'api-a' });
    const audPayload = decodeJwtPart(withAud.accessToken, 1);
    expect(audPayload.aud).toBe('api-a');
    for (const aud of ['api-b', '', null, ['api-a', 'api-b']]) {
      await expectRejected(signWith(keys.ES256!, esHeader(), { ...audPayload, aud }));
    }
  });

  it('J-26 minting as another tenant: reserved claims are refused', async () => {
    for (const claims of [{ iss: 'x' }, { aud: 'sec-b' }, { jti: 'x' }, { exp: 1e12 }, { sid: 'x' }]) {
      const res = await server.call('POST', `/v1/apps/${apps.ES256!.name}/sessions`, {
        json: { subject: 'u1', claims }, headers: { authorization: `Bearer ${apps.ES256!.appKey}` },
      });
      expect(res.status).toBe(400);
    }
  });
});
