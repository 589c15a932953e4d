import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ProofVerifier } from '../../src/crypto/proof_verifier.js';

/**
 * The proof-signature thread (proof_verifier.ts): every answer is the signature's own, whether the
 * thread gives it, or the pool does because the thread could not start, died, or went silent.
 */
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Case { alg: string; header: string; key: KeyObject; input: string; signature: string; valid: boolean }

function signed(alg: 'ES256' | 'EdDSA' | 'RS256' | 'PS256', n: number): Case[] {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const header = b64({ typ: 'dpop+jwt', alg, jwk: publicKey.export({ format: 'jwk' }) });
  const options = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' as const }
    : alg === 'PS256' ? { key: privateKey, padding: 6, saltLength: 32 } : privateKey;
  return Array.from({ length: n }, (_, i) => {
    const input = `${header}.${b64({ jti: `${alg}-${i}` })}`;
    const signature = sign(alg === 'EdDSA' ? null : 'sha256', Buffer.from(input), options).toString('base64url');
    // Every other one is tampered with: the signature of another payload.
    return i % 2 === 0
      ? { alg, header, key: publicKey, input, signature, valid: true }
      : { alg, header, key: publicKey, input: `${header}.${b64({ jti: 'other' })}`, signature, valid: false };
  });
}

const cases = [...signed('ES256', 40), ...signed('EdDSA', 6), ...signed('RS256', 4), ...signed('PS256', 4)];
const answers = (v: ProofVerifier, list: Case[]) => Promise.all(list.map((c) => v.verify(c.alg, c.key, c.input, c.signature)));

const dir = mkdtempSync(join(tmpdir(), 'rotor-verifier-'));
const compiledVerifier = pathToFileURL(join(import.meta.dirname, '../../dist/src/crypto/proof_verifier_worker.js'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const workerFile = (name: string, source: string) => {
  const path = join(dir, name);
  writeFileSync(path, source);
  return pathToFileURL(path);
};

describe('ProofVerifier', () => {
  it('answers each signature of a turn, in one batch, as the signature deserves (every alg of the allow-list)', async () => {
    const verifier = new ProofVerifier();
    expect(await answers(verifier, cases)).toEqual(cases.map((c) => c.valid));
    // An ES256 signature that is not 64 bytes is refused before any arithmetic.
    const c = cases[0]!;
    expect(await verifier.verify('ES256', c.key, c.input, c.signature.slice(0, 40))).toBe(false);
    await verifier.close();
  });

  it('the thread cannot start (no such file): the pool answers, rightly', async () => {
    const verifier = new ProofVerifier({ url: pathToFileURL(join(dir, 'missing.js')) });
    expect(await answers(verifier, cases)).toEqual(cases.map((c) => c.valid));
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(cases.slice(0, 4).map((c) => c.valid));
  });

  it('the thread dies with a batch in flight: the pool answers it, and every later one', async () => {
    const url = workerFile('dies.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));");
    const verifier = new ProofVerifier({ url });
    const failures: string[] = [];
    verifier.onFailure((failure) => failures.push(failure));
    expect(await answers(verifier, cases)).toEqual(cases.map((c) => c.valid));
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(cases.slice(0, 4).map((c) => c.valid));
    expect(failures).toEqual(['exited']); // once: later checks went to the pool, no new thread was tried
  });

  it('the thread answers part of a batch, then dies: the rest is checked on the pool, and every answer is still right', async () => {
    // The real protocol's first answer (the batch's first two jobs, both said to verify, the second wrongly), then an exit.
    const url = workerFile('answers-then-dies.mjs', `import { parentPort } from 'node:worker_threads';
      parentPort.on('message', ({ id }) => { parentPort.postMessage({ id, from: 0, valid: new Uint8Array([1, 1]) }); setTimeout(() => process.exit(3), 20); });`);
    const verifier = new ProofVerifier({ url });
    const list = cases.slice(0, 8);
    const got = await answers(verifier, list);
    expect(got.slice(0, 2)).toEqual([true, true]); // what the thread said stands: it is the thread's answer
    expect(got.slice(2)).toEqual(list.slice(2).map((c) => c.valid));
    expect(verifier.onPool).toBe(true);
  });

  it('a job that could not be a compact JWS (a line break, or any character outside base64url) is false, and does not disturb its batch', async () => {
    const verifier = new ProofVerifier();
    const c = cases[0]!;
    const bad = [
      verifier.verify('ES256', c.key, `${c.input}\nES256`, c.signature),
      verifier.verify('ES256', c.key, c.input, `${c.signature}\n`),
      verifier.verify('ES256\n', c.key, c.input, c.signature),
      verifier.verify('ES256', c.key, `${c.input} `, c.signature),
    ];
    const good = answers(verifier, cases.slice(0, 6));
    expect(await Promise.all(bad)).toEqual([false, false, false, false]);
    expect(await good).toEqual(cases.slice(0, 6).map((x) => x.valid));
    await verifier.close();
  });

  it('the thread cannot even be created (Worker throws at once): the pool answers, and no exception escapes', async () => {
    const verifier = new ProofVerifier({ url: new URL('https://rotor.invalid/worker.js') });
    const failures: string[] = [];
    const stop = verifier.onFailure((failure) => failures.push(failure));
    verifier.onFailure(() => { throw new Error('a listener\'s own fault'); });
    expect(await answers(verifier, cases)).toEqual(cases.map((c) => c.valid));
    expect(verifier.onPool).toBe(true);
    expect(failures).toEqual(['not_created']);
    stop();
  });

  it('a blocked event loop is not the thread\'s fault: its answer, already delivered, is read before the deadline is judged', async () => {
    const verifier = new ProofVerifier({ deadlineMs: 300 });
    await answers(verifier, cases.slice(0, 2)); // the thread is up
    const pending = answers(verifier, cases.slice(0, 6));
    await new Promise((r) => setImmediate(r)); // posted
    const until = Date.now() + 450;
    while (Date.now() < until) { /* the loop is blocked past the deadline */ }
    expect(await pending).toEqual(cases.slice(0, 6).map((c) => c.valid));
    expect(verifier.onPool).toBe(false);
    await verifier.close();
  });

  it('after a failure the pool serves for retryAfterMs, then a new thread is tried', async () => {
    const url = workerFile('dies-once.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));");
    const verifier = new ProofVerifier({ url, retryAfterMs: 150 });
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(cases.slice(0, 4).map((c) => c.valid));
    expect(verifier.onPool).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(verifier.onPool).toBe(false);
    writeFileSync(new URL(url), `import ${JSON.stringify(compiledVerifier.href)};`); // the real thread, this time
    expect(await answers(verifier, cases)).toEqual(cases.map((c) => c.valid));
    expect(verifier.onPool).toBe(false);
    await verifier.close();
  });

  it('the thread goes silent: past the deadline the pool answers, and the thread is stopped', async () => {
    const url = workerFile('silent.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => {});");
    const verifier = new ProofVerifier({ url, deadlineMs: 200 });
    const failures: string[] = [];
    verifier.onFailure((failure) => failures.push(failure));
    const started = Date.now();
    expect(await answers(verifier, cases.slice(0, 6))).toEqual(cases.slice(0, 6).map((c) => c.valid));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // Later checks no longer wait for it.
    const again = Date.now();
    expect(await answers(verifier, cases.slice(0, 6))).toEqual(cases.slice(0, 6).map((c) => c.valid));
    expect(Date.now() - again).toBeLessThan(190);
    expect(failures).toEqual(['silent']); // its stopping is not a second failure
  });
});
