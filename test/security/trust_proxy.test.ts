import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createApp, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * S2-02: ROTOR_TRUST_PROXY is a hop count or a list of proxy addresses, never "trust everything", so the
 * client ip (rate-limit buckets, the ip recorded on sessions) is the entry a trusted proxy appended —
 * not the left-most X-Forwarded-For entry, which the client writes itself.
 * The test servers listen on 127.0.0.1, so the peer (the "proxy") is always 127.0.0.1.
 */

let appCount = 0;

/** The ip Rotor records for a native session issued with these headers (no `ip` in the body), read back over the API. */
async function recordedIp(server: TestServer, headers: Record<string, string>): Promise<string> {
  const app = await createApp(server, { name: `tp-${(appCount += 1)}` });
  const auth = { authorization: `Bearer ${app.appKey}` };
  const issued = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'alice' }, headers: { ...auth, ...headers } });
  expect(issued.status, issued.text).toBe(201);
  const listed = await server.call('GET', `/v1/apps/${app.name}/sessions?subject=alice`, { headers: auth });
  expect(listed.status, listed.text).toBe(200);
  expect(listed.body.sessions).toHaveLength(1);
  return listed.body.sessions[0].ip;
}

/** A failed refresh guess sent with this X-Forwarded-For. */
function guess(server: TestServer, forwardedFor: string) {
  return server.call('POST', '/v1/refresh', { json: { refreshToken: 'rt_nope' }, headers: { 'x-forwarded-for': forwardedFor } });
}

let spoof = 0;
/** A fresh client-written left-most entry each time: the attacker rotating "its" address. */
const rotating = () => `6.6.${Math.floor((spoof += 1) / 250) % 250}.${spoof % 250}`;

/** Three failed guesses from `client` (whatever it puts left of it) exhaust its bucket; another client's is untouched. */
async function expectBucketPerClient(server: TestServer, client: string, other: string, behind = '') {
  for (let i = 0; i < 3; i += 1) expect((await guess(server, `${rotating()}, ${client}${behind}`)).status).toBe(400);
  for (let i = 0; i < 3; i += 1) {
    const res = await guess(server, `${rotating()}, ${client}${behind}`);
    expect(res.status, 'rotating the left-most entry must not open a fresh bucket').toBe(429);
  }
  expect((await guess(server, `${client}${behind}`)).status).toBe(429);
  expect((await guess(server, `${other}${behind}`)).status, 'another client behind the same proxy has its own bucket').toBe(400);
}

const LIMITED = { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=3' };

/**
 * Each way of naming the proxies in front, with where it finds the client: the recorded ip for a header
 * (and `behind`: what the trusted proxies append after the client), and a refresh-failure bucket per client.
 */
const FRONTS = [
  { name: 'ROTOR_TRUST_PROXY=1 (one proxy in front)', value: '1', finds: 'the client is the right-most X-Forwarded-For entry (the one the proxy appended), not the left-most',
    recorded: [['6.6.6.6, 203.0.113.9', '203.0.113.9'], ['203.0.113.10', '203.0.113.10']], clients: ['203.0.113.20', '203.0.113.21'], behind: '' },
  { name: 'ROTOR_TRUST_PROXY=2 (two proxies in front)', value: '2', finds: 'the client is the second entry from the right',
    recorded: [['6.6.6.6, 198.51.100.7, 203.0.113.9', '198.51.100.7']], clients: ['198.51.100.30', '198.51.100.31'], behind: ', 203.0.113.9' },
  { name: 'ROTOR_TRUST_PROXY=127.0.0.1 (an address list naming the proxy)', value: '127.0.0.1', finds: 'the client is the entry the trusted proxy appended',
    recorded: [['6.6.6.6, 203.0.113.9', '203.0.113.9']], clients: ['203.0.113.40', '203.0.113.41'], behind: '' },
] as const;

for (const front of FRONTS) {
  describe(`S2-02 ${front.name}`, () => {
    let server: TestServer;
    beforeAll(async () => { server = await startTestServer({ env: { ...LIMITED, ROTOR_TRUST_PROXY: front.value } }); });
    afterAll(async () => { await server.close(); });

    it(`S2-02 ${front.finds}`, async () => {
      for (const [forwardedFor, client] of front.recorded) expect(await recordedIp(server, { 'x-forwarded-for': forwardedFor }), forwardedFor).toBe(client);
      // A direct request without the header is the peer itself.
      expect(await recordedIp(server, {})).toBe('127.0.0.1');
    });

    it('S2-02 rotating the left-most entry does not escape the per-ip refresh-failure bucket', async () => {
      await expectBucketPerClient(server, front.clients[0], front.clients[1], front.behind);
    });
  });
}

describe('S2-02 ROTOR_TRUST_PROXY address list with CIDRs (a chain of trusted proxies)', () => {
  it('S2-02 walks right to left past every trusted proxy and stops at the first untrusted address', async () => {
    const server = await startTestServer({ env: { ROTOR_TRUST_PROXY: '::1, 127.0.0.1/32, 203.0.113.0/24' } });
    try {
      expect(await recordedIp(server, { 'x-forwarded-for': '6.6.6.6, 198.51.100.7, 203.0.113.9' })).toBe('198.51.100.7');
    } finally {
      await server.close();
    }
  });
});

describe('S2-02 one client, one bucket, however its address is spelled or chosen', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { ...LIMITED, ROTOR_TRUST_PROXY: '1' } }); });
  afterAll(async () => { await server.close(); });

  it('S2-02 an IPv6 client moving through its /56 stays in one refresh-failure bucket; the next /56 has its own', async () => {
    // A subscriber picks any of its 2^72 addresses (privacy addresses rotate by themselves), and the
    // proxy may write the same address in another letter case or with its zeros.
    for (const address of ['2001:db8:aa:1::1', '2001:DB8:AA:2:0:0:0:7', '2001:db8:aa:ff:1234:5678:9abc:def0']) {
      expect((await guess(server, address)).status, address).toBe(400);
    }
    for (const address of ['2001:db8:aa:3::1', '2001:0db8:00aa:0001:0000:0000:0000:0001']) {
      expect((await guess(server, address)).status, `${address}: same /56`).toBe(429);
    }
    expect((await guess(server, '2001:db8:aa:100::1')).status, 'the next /56 is another client').toBe(400);
    // The address itself is still recorded whole: the /56 is only the bucket.
    expect(await recordedIp(server, { 'x-forwarded-for': '2001:db8:aa:3::1' })).toBe('2001:db8:aa:3::1');
    // A zone names an interface of whoever wrote it, not a client: nothing is recorded.
    expect(await recordedIp(server, { 'x-forwarded-for': '2001:db8::1%eth0' })).toBeNull();
  });

  it('S2-02 a proxy that appends ip:port: the port is dropped, each client its own bucket, its address recorded', async () => {
    for (let i = 0; i < 3; i += 1) expect((await guess(server, `198.51.100.1:${4000 + i}`)).status).toBe(400);
    expect((await guess(server, '198.51.100.1:5999')).status, 'another port, the same client').toBe(429);
    expect((await guess(server, '198.51.100.2:4000')).status, 'another client').toBe(400);
    for (let i = 0; i < 3; i += 1) expect((await guess(server, `[2001:db8:ee::1]:${443 + i}`)).status).toBe(400);
    expect((await guess(server, '2001:db8:ee::1')).status).toBe(429);
    expect(await recordedIp(server, { 'x-forwarded-for': '203.0.113.5:4321' })).toBe('203.0.113.5');
    expect(await recordedIp(server, { 'x-forwarded-for': '[2001:db8::5]:443' })).toBe('2001:db8::5');
  });

  it('S2-02 what is not an address is one bucket, however it is spelled (a proxy that passes junk on as written)', async () => {
    for (let i = 0; i < 3; i += 1) expect((await guess(server, `junk-${i}`)).status).toBe(400);
    expect((await guess(server, 'other junk')).status).toBe(429);
    expect((await guess(server, 'x'.repeat(10_000))).status, 'a long one, never cached').toBe(429);
    expect((await guess(server, '203.0.113.77')).status, 'an address is its own client').toBe(400);
  });

  it('S2-02 an IPv4 client written as IPv4-mapped IPv6 is the same bucket as the plain address', async () => {
    for (let i = 0; i < 3; i += 1) expect((await guess(server, '203.0.113.60')).status).toBe(400);
    expect((await guess(server, '::ffff:203.0.113.60')).status).toBe(429);
    expect((await guess(server, '::FFFF:cb00:713c')).status, '::ffff:203.0.113.60 in hex').toBe(429);
    expect((await guess(server, '203.0.113.61')).status).toBe(400);
  });
});

describe('S2-02 the IPv6 bucket is as wide as ROTOR_RATE_LIMITS ipv6Prefix says', () => {
  it('S2-02 ipv6Prefix=48: the whole /48 is one client, the next /48 another', async () => {
    const server = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=3,ipv6Prefix=48', ROTOR_TRUST_PROXY: '1' } });
    try {
      for (const address of ['2001:db8:bb:1::1', '2001:db8:bb:ff00::2', '2001:db8:bb:ffff::3']) expect((await guess(server, address)).status, address).toBe(400);
      expect((await guess(server, '2001:db8:bb:8000::9')).status, 'another /56 in the same /48').toBe(429);
      expect((await guess(server, '2001:db8:bc::1')).status, 'the next /48 is another client').toBe(400);
    } finally {
      await server.close();
    }
  });

  it('S2-02 ipv6Prefix=128: each IPv6 address is its own bucket', async () => {
    const server = await startTestServer({ env: { ROTOR_RATE_LIMITS: 'refreshFailuresPerIp=3,ipv6Prefix=128', ROTOR_TRUST_PROXY: '1' } });
    try {
      for (let i = 0; i < 3; i += 1) expect((await guess(server, '2001:db8:cc::1')).status).toBe(400);
      expect((await guess(server, '2001:0DB8:cc:0::1')).status, 'the same address spelled otherwise').toBe(429);
      expect((await guess(server, '2001:db8:cc::2')).status, 'the next address').toBe(400);
    } finally {
      await server.close();
    }
  });

  it('S2-02 a prefix length outside 16–128 is refused at start, in one line', () => {
    for (const value of ['ipv6Prefix=8', 'ipv6Prefix=129', 'ipv6Prefix=0', 'ipv6Prefix=56.5', 'ipv6Prefix=0x40', 'ipv6Prefix=1e2', 'refreshPerIp=6e3', 'refreshPerIp= 60']) {
      expect(() => loadConfig({ ROTOR_DATABASE_URL: 'sqlite::memory:', ROTOR_RATE_LIMITS: value }), value).toThrow(ConfigError);
    }
    expect(() => loadConfig({ ROTOR_DATABASE_URL: 'sqlite::memory:', ROTOR_RATE_LIMITS: 'ipv6Prefix=129' })).toThrow(/16 to 128/);
    expect(loadConfig({ ROTOR_DATABASE_URL: 'sqlite::memory:' }).rateLimits?.ipv6Prefix).toBe(56);
  });
});

describe('S2-02 the header is ignored unless the peer is trusted', () => {
  for (const [name, value] of [
    ['an address list that does not include the peer (127.0.0.1)', '10.0.0.0/8,192.168.1.5,fd00::/8'],
    ['off (unset)', undefined],
  ] as const) {
    it(`S2-02 ${name}: the ip is the peer, and so is the bucket, whatever X-Forwarded-For says`, async () => {
      const server = await startTestServer({ env: { ...LIMITED, ...(value === undefined ? {} : { ROTOR_TRUST_PROXY: value }) } });
      try {
        expect(await recordedIp(server, { 'x-forwarded-for': '6.6.6.6, 203.0.113.9' })).toBe('127.0.0.1');
        for (let i = 0; i < 3; i += 1) expect((await guess(server, `${rotating()}, 203.0.113.50`)).status).toBe(400);
        // Another "client" in the header is still the same peer: its bucket is spent.
        expect((await guess(server, `${rotating()}, 203.0.113.51`)).status).toBe(429);
      } finally {
        await server.close();
      }
    });
  }
});

describe('S2-02 ROTOR_TRUST_PROXY parsing', () => {
  const load = (value: string) => loadConfig({ ROTOR_DATABASE_URL: 'sqlite::memory:', ROTOR_TRUST_PROXY: value });
  const refusal = (value: string): ConfigError => {
    try {
      load(value);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain('\n');
      return err as ConfigError;
    }
    throw new Error(`ROTOR_TRUST_PROXY=${value} was accepted`);
  };

  it('S2-02 true, yes, on, all and * are refused with one line saying what to write instead', () => {
    for (const value of ['true', 'TRUE', 'yes', 'on', 'all', '*', ' True ']) {
      const message = refusal(value).message;
      expect(message, value).toMatch(/^ROTOR_TRUST_PROXY=\S+ is ambiguous: /);
      expect(message, value).toContain('set the number of proxies in front of Rotor (e.g. 1) or their addresses (e.g. 10.0.0.0/8,192.168.1.5)');
    }
  });

  it('S2-02 bad addresses, prefix lengths and hop counts are refused, naming the bad entry', () => {
    for (const [value, entry] of [
      ['10.0.0.0/33', '10.0.0.0/33'], ['::/129', '::/129'], ['10.0.0.0/', '10.0.0.0/'], ['10.0.0.0/8x', '10.0.0.0/8x'],
      ['10.0.0.0/08', '10.0.0.0/08'], ['300.1.1.1', '300.1.1.1'], ['10.0.0.1,proxy.internal', 'proxy.internal'],
      ['fe80::1%eth0', 'fe80::1%eth0'], ['10.0.0.1\n10.0.0.2', '10.0.0.1\\n10.0.0.2'], ['-1', '-1'], ['1.5', '1.5'], ['1,10.0.0.1', '1'], ['loopback', 'loopback'],
    ] as const) {
      expect(refusal(value).message, value).toContain(`"${entry}"`);
    }
    // "Trust every address" spelled as a CIDR is still trust-everything.
    for (const value of ['0.0.0.0/0', '::/0', '10.0.0.1, ::/0']) expect(refusal(value).message, value).toMatch(/every address/);
    expect(refusal('1000').message).toMatch(/1 to 32/);
    // Trust-everything in other spellings (found by an outside review): every IPv4 peer matches an IPv6
    // range holding its IPv4-mapped form, and two halves make a whole.
    for (const value of ['::ffff:0:0/96', '::/8', '::ffff:0.0.0.0/100', '0.0.0.0/1,128.0.0.0/1', '10.0.0.0/7', '2000::/3', '::/1, 8000::/1', '2a00::/8', '2001::/12']) {
      expect(refusal(value).message, value).toMatch(/trusts (every IPv4 address|a \/\d+ of (public )?IPv[46])/);
    }
    expect(refusal(' , ,').message).toMatch(/names no proxy/);
  });

  it('S2-02 a hop count is accepted: 2 trusts exactly the peer and the hop before it', () => {
    const trust = load('2').trustProxy;
    expect(typeof trust).toBe('function');
    if (typeof trust !== 'function') throw new Error('unreachable');
    expect(trust.hops).toBe(2);
    expect([0, 1, 2, 3].map((hop) => trust('203.0.113.9', hop))).toEqual([true, true, false, false]);
    expect((load(' 1 ').trustProxy as { hops: number }).hops).toBe(1);
  });

  it('S2-02 an address list is accepted, IPv4 and IPv6, trimmed', () => {
    expect(load(' 10.0.0.0/8, 192.168.1.5 ,fd00::/8,::1,2001:db8::/32,').trustProxy).toEqual(['10.0.0.0/8', '192.168.1.5', 'fd00::/8', '::1', '2001:db8::/32']);
    expect(load('::ffff:10.0.0.0/104,::ffff:192.168.1.5').trustProxy).toEqual(['::ffff:10.0.0.0/104', '::ffff:192.168.1.5']);
    // A CDN's published ranges (Cloudflare's widest IPv6 one is a /29) and private space up to a /8.
    expect(load('2a06:98c0::/29,2400:cb00::/32,fe80::/10,fd12::/16').trustProxy).toEqual(['2a06:98c0::/29', '2400:cb00::/32', 'fe80::/10', 'fd12::/16']);
  });

  it('S2-02 empty, off, false and 0 mean off', () => {
    for (const value of ['', ' ', 'off', 'OFF', 'false', 'no', '0', '00']) expect(load(value).trustProxy, value).toBe(false);
    expect(loadConfig({ ROTOR_DATABASE_URL: 'sqlite::memory:' }).trustProxy).toBe(false);
  });
});
