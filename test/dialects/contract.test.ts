import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../src/dialects/index.js';
import { createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';
import { CONTRACTS, SUBJECT, type App, type Pair } from './contracts.js';

/**
 * The contract every dialect keeps (issue 16), run for each one in src/dialects/index.ts from its
 * descriptor in contracts.ts: a store outage is a 503 with Retry-After in its envelope on every call
 * that decides a token; a token minted for another dialect or app is refused in its envelope and left
 * alive where it belongs; a body that is not JSON, and one over 64 KiB, are answered in its envelope.
 */
const PAD = 'x'.repeat(70 * 1024);

it('every dialect in src/dialects/index.ts has a contract descriptor, and one name', () => {
  for (const dialect of DIALECTS) {
    expect(CONTRACTS[dialect.name], dialect.name).toBeDefined();
    expect(dialect.domain.profile).toBe(dialect.name);
    expect(dialect.http.api.name).toBe(dialect.name);
  }
});

describe.each(DIALECTS.map((d) => d.name))('dialect contract: %s', (name) => {
  const contract = CONTRACTS[name]!;
  let server: TestServer;
  let app: App;
  const pairOf = async (of: App = app): Promise<Pair> => issue(server, of, SUBJECT) as Promise<Pair>;
  /** Native introspection: whether the token is still live (nothing consumed, nothing revoked). */
  const alive = async (token: string, owner: App) =>
    (await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${owner.appKey}` } })).body.active === true;

  beforeAll(async () => {
    server = await startTestServer();
    app = await createApp(server, { name: `contract-${name}`, profile: name, ...(contract.policy ? { policy: contract.policy } : {}) });
    await contract.enrol?.(server, app);
  });
  afterAll(async () => { await server.close(); });

  it('renews its own pair (the descriptor is right)', async () => {
    const res = await contract.renew(server, app, await pairOf());
    expect(res.status, res.text).toBe(200);
  });

  it('refuses a token minted for another dialect, a native app or another app of its own, in its envelope, and leaves it alive', async () => {
    const other = DIALECTS.find((d) => d.name !== name)!.name;
    const owners: App[] = [
      await createApp(server, { name: `contract-${name}-native` }),
      await createApp(server, { name: `contract-${name}-${other}`, profile: other, ...(CONTRACTS[other]!.policy ? { policy: CONTRACTS[other]!.policy } : {}) }),
      await createApp(server, { name: `contract-${name}-b`, profile: name, ...(contract.policy ? { policy: contract.policy } : {}) }),
    ];
    for (const owner of owners) {
      const minted = await pairOf(owner);
      // Verifik mints no refresh token: its access token stands in for one.
      const foreign = { ...minted, refreshToken: minted.refreshToken ?? minted.accessToken };
      // Another app of its own dialect is refused only where the call names this app (its path or key).
      if (owner.profile === name && name !== 'jwtplus') continue;
      const res = await contract.renew(server, app, foreign);
      contract.refused(res);
      expect(await alive(foreign.refreshToken, owner), `${owner.name}'s token died`).toBe(true);
    }
    expect((await contract.renew(server, app, await pairOf())).status).toBe(200);
  });

  it('answers a body that is not JSON in its envelope', async () => {
    const res = await contract.malformed.send(server, app, await pairOf());
    expect(res.status, res.text).toBe(contract.malformed.status);
    if (contract.malformed.body !== null) expect(res.text).toBe(contract.malformed.body);
  });

  it('answers a body over 64 KiB with 413 in its envelope', async () => {
    const res = await contract.oversized.send(server, app, await pairOf(), PAD);
    expect(res.status).toBe(413);
    expect(res.text).toBe(contract.oversized.body);
  });

  it('answers 503 with Retry-After in its envelope on every call that decides a token while the store is down', async () => {
    // A server of its own: closing its store is the point, and its close() would close the store again.
    const down = await startTestServer();
    try {
      const own = await createApp(down, { name: `contract-${name}-down`, profile: name, ...(contract.policy ? { policy: contract.policy } : {}) });
      await contract.enrol?.(down, own);
      const pair = (await issue(down, own, SUBJECT)) as Pair;
      await down.rotor.close();
      for (const call of contract.deciding(down, own, pair)) {
        const res = await call;
        expect(res.status, res.text).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(res.text).toBe(contract.unavailable);
      }
    } finally {
      await down.app.close();
      rmSync(down.dir, { recursive: true, force: true });
    }
  });
});
