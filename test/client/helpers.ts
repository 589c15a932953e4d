import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { expect } from 'vitest';
import { RotorClientError, type TokenPair } from '../../packages/client/src/rotor-client.js';
import type { TestServer } from '../helpers/server.js';

/**
 * Requests Rotor answered on a route, by its own `/metrics` (rotor_http_requests_total): the count a
 * client cannot fake. The counter moves in onResponse, just after the answer left: poll until it is steady.
 */
export async function requestsTo(server: TestServer, route: string, method = 'POST'): Promise<number> {
  let last = -1;
  for (let i = 0; i < 20; i += 1) {
    const text = (await server.call('GET', '/metrics')).text;
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith('rotor_http_requests_total{')) continue;
      if (line.includes(`route="${route}"`) && line.includes(`method="${method}"`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    if (sum === last) return sum;
    last = sum;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return last;
}

/** Refresh outcomes by `rotor_refresh_total{outcome}`: rotated, retry (grace replay), reuse, refused. */
export async function refreshOutcomes(server: TestServer): Promise<Record<string, number>> {
  const text = (await server.call('GET', '/metrics')).text;
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^rotor_refresh_total\{[^}]*outcome="([a-z_]+)"[^}]*\} (\d+)/.exec(line);
    if (match) out[match[1] as string] = (out[match[1] as string] ?? 0) + Number(match[2]);
  }
  return out;
}

/** A Storage-like object two clients can share: two tabs of one origin, as Node sees them. */
export function sharedStorage(): { getItem(k: string): string | null; setItem(k: string, v: string): void; removeItem(k: string): void; map: Map<string, string> } {
  const map = new Map<string, string>();
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v), removeItem: (k) => void map.delete(k) };
}

/**
 * A Rotor whose ROTOR_ISSUER is its own URL, as in production (the issuer is the public URL clients
 * call): a DPoP proof's `htu` is the client's baseUrl + path, and Rotor checks it against the issuer.
 */
export async function startIssuerServer(env: Record<string, string> = {}): Promise<TestServer> {
  const { createServer } = await import('node:net');
  const { startTestServer } = await import('../helpers/server.js');
  for (let i = 0; ; i += 1) {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = createServer().once('error', reject);
      probe.listen(0, '127.0.0.1', () => { const p = (probe.address() as { port: number }).port; probe.close(() => resolve(p)); });
    });
    try {
      return await startTestServer({ port, env: { ROTOR_ISSUER: `http://127.0.0.1:${port}`, ...env } });
    } catch (err) {
      if (i >= 3 || !String(err).includes('EADDRINUSE')) throw err; // someone took the port meanwhile
    }
  }
}

/** Makes the pair stored under `key` look expired to the clients sharing `storage` (Rotor's clock is untouched). */
export function expireStored(storage: { getItem(k: string): string | null; setItem(k: string, v: string): void }, key: string): void {
  const state = JSON.parse(storage.getItem(key) as string) as { accessExpiresAt: number; receivedAt: number };
  storage.setItem(key, JSON.stringify({ ...state, receivedAt: 0, accessExpiresAt: 0 }));
}

/** Whether Rotor's native introspection finds `token` active, asked with the app's key. */
export async function isActive(server: TestServer, app: { appKey: string }, token: string): Promise<boolean> {
  return (await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } })).body.active as boolean;
}

/** The pair as the client first sees it, already at its expiry (by the client's clock; Rotor's is real). */
export const expiring = (pair: TokenPair): TokenPair => ({ ...pair, expiresIn: 0 });

/** The RotorClientError a promise rejects with; fails the test when it fulfils or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<RotorClientError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(RotorClientError);
    return err as RotorClientError;
  }
  throw new Error('expected a rejection');
}

/** A valid DPoP proof by a key of the thief's own: all that someone holding a stolen token can make outside the page. */
export function thiefProof(htu: string): string {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicKey.export({ format: 'jwk' }) })}.${b64({ jti: randomUUID(), htm: 'POST', htu, iat: Math.floor(Date.now() / 1000) })}`;
  return `${input}.${cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}
