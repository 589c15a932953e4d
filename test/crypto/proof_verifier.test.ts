import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ProofVerifier } from '../../src/crypto/proof_verifier.js';

/**
 * The proof verifier's thread (proof_verifier.ts): every answer is the proof's own, whether the thread
 * gives it, or the event loop and the pool do because the thread could not start, died, or went silent.
 */
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const HTU = 'https://rotor.test/v1/refresh';
const NOW = 1_800_000_000;
const EXPECT = { htm: 'POST', htu: HTU, nowSeconds: NOW };
const FORGED = 'the proof signature does not verify with its jwk';

/** A proof and what checking it must give: its jti, or the refusal's detail. */
interface Case { proof: string; outcome: string }

function signed(alg: 'ES256' | 'EdDSA' | 'RS256' | 'PS256', n: number): Case[] {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const header = b64({ typ: 'dpop+jwt', alg, jwk: publicKey.export({ format: 'jwk' }) });
  const options = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' as const }
    : alg === 'PS256' ? { key: privateKey, padding: 6, saltLength: 32 } : privateKey;
  const proofOf = (claims: Record<string, unknown>, signed = claims) => {
    const signature = sign(alg === 'EdDSA' ? null : 'sha256', Buffer.from(`${header}.${b64(signed)}`), options).toString('base64url');
    return `${header}.${b64(claims)}.${signature}`;
  };
  return Array.from({ length: n }, (_, i) => {
    const claims = { jti: `${alg}-${i}`, htm: 'POST', htu: HTU, iat: NOW };
    // Good ones, one signed over other claims than it carries, one for another method.
    if (i % 3 === 0) return { proof: proofOf(claims), outcome: claims.jti };
    if (i % 3 === 1) return { proof: proofOf(claims, { ...claims, jti: 'other' }), outcome: FORGED };
    return { proof: proofOf({ ...claims, htm: 'GET' }), outcome: 'htm is not this request\'s method' };
  });
}

const cases = [...signed('ES256', 40), ...signed('EdDSA', 6), ...signed('RS256', 4), ...signed('PS256', 4)];
const outcomes = (list: Case[]) => list.map((c) => c.outcome);
const answers = (v: ProofVerifier, list: Case[]) =>
  Promise.all(list.map(async (c) => { const r = await v.check(c.proof, EXPECT); return 'error' in r ? r.detail : r.jti; }));

const dir = mkdtempSync(join(tmpdir(), 'rotor-verifier-'));
const compiledVerifier = pathToFileURL(join(import.meta.dirname, '../../dist/src/crypto/proof_verifier_worker.js'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const workerFile = (name: string, source: string) => {
  const path = join(dir, name);
  writeFileSync(path, source);
  return pathToFileURL(path);
};

describe('ProofVerifier', () => {
  it('answers each proof of a turn, sent in one batch, as it deserves, each answer its own (every alg of the allow-list)', async () => {
    const verifier = new ProofVerifier();
    expect(await answers(verifier, cases)).toEqual(outcomes(cases));
    // What a good proof proves: its key's thumbprint, its claims, its replay key.
    const good = await verifier.check(cases[0]!.proof, EXPECT);
    expect(good).toMatchObject({ jti: 'ES256-0', iat: NOW, nonce: null });
    // The replay key's layout is every release's (instances of two releases share a store in a rolling upgrade).
    const jkt = (good as { jkt: string }).jkt;
    expect(good).toHaveProperty('replayKey', createHash('sha256').update(`${jkt}:ES256-0`).digest('base64url'));
    // An ES256 signature that is not 64 bytes is refused before any arithmetic.
    const [h, p, sig] = cases[0]!.proof.split('.');
    expect(await verifier.check(`${h}.${p}.${sig!.slice(0, 40)}`, EXPECT)).toEqual({ error: 'invalid_dpop_proof', detail: FORGED });
    await verifier.close();
  });

  it('past maxOwed proofs waiting, more are answered server_busy at once, unchecked; answered ones make room again', async () => {
    const verifier = new ProofVerifier({ maxOwed: 3 });
    const good = cases.filter((c) => c.outcome.startsWith('ES256-')).slice(0, 5);
    const first = await Promise.all(good.map(async (c) => { const r = await verifier.check(c.proof, EXPECT); return 'error' in r ? r.error : r.jti; }));
    expect(first).toEqual([...outcomes(good.slice(0, 3)), 'server_busy', 'server_busy']);
    // All answered: nothing is owed, so a whole batch fits again (and a malformed one is refused at once, never counted).
    expect(await verifier.check('not a proof!', EXPECT)).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(await answers(verifier, good.slice(0, 3))).toEqual(outcomes(good.slice(0, 3)));
    await verifier.close();
    // The pool's checks count too, when the thread is gone.
    const pooled = new ProofVerifier({ url: pathToFileURL(join(dir, 'missing.js')), maxOwed: 2 });
    const viaPool = await Promise.all(good.slice(0, 3).map(async (c) => { const r = await pooled.check(c.proof, EXPECT); return 'error' in r ? r.error : r.jti; }));
    expect(viaPool).toEqual([...outcomes(good.slice(0, 2)), 'server_busy']);
    expect(await answers(pooled, good.slice(0, 2))).toEqual(outcomes(good.slice(0, 2)));
  });

  it('the thread cannot start (no such file): the pool answers, rightly', async () => {
    const verifier = new ProofVerifier({ url: pathToFileURL(join(dir, 'missing.js')) });
    expect(await answers(verifier, cases)).toEqual(outcomes(cases));
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(outcomes(cases.slice(0, 4)));
  });

  it('the thread dies with a batch in flight: the pool answers it, and every later one', async () => {
    const url = workerFile('dies.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));");
    const verifier = new ProofVerifier({ url });
    const failures: string[] = [];
    verifier.onFailure((failure) => failures.push(failure));
    expect(await answers(verifier, cases)).toEqual(outcomes(cases));
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(outcomes(cases.slice(0, 4)));
    expect(failures).toEqual(['exited']); // once: later checks went to the pool, no new thread was tried
  });

  it('the thread answers part of a batch, then dies: the rest is checked on the pool, and every answer is still right', async () => {
    // The real protocol's first answer (the batch's first two jobs), then an exit.
    const url = workerFile('answers-then-dies.mjs', `import { parentPort } from 'node:worker_threads';
      const said = (jti) => ({ jkt: 'k', jti, iat: 0, nonce: null, replayKey: 'r' });
      parentPort.on('message', ({ id }) => { parentPort.postMessage({ id, from: 0, results: [said('first'), said('second')] }); setTimeout(() => process.exit(3), 20); });`);
    const verifier = new ProofVerifier({ url });
    const list = cases.slice(0, 8);
    const got = await answers(verifier, list);
    expect(got.slice(0, 2)).toEqual(['first', 'second']); // what the thread said stands: it is the thread's answer
    expect(got.slice(2)).toEqual(outcomes(list.slice(2)));
    expect(verifier.onPool).toBe(true);
  });

  it('a thread that answers out of order is taken for broken: it is stopped, and the pool answers what it owed', async () => {
    const url = workerFile('out-of-order.mjs', `import { parentPort } from 'node:worker_threads';
      parentPort.on('message', ({ id }) => parentPort.postMessage({ id, from: 1, results: [{ jkt: 'k', jti: 'skipped one', iat: 0, nonce: null, replayKey: 'r' }] }));`);
    const verifier = new ProofVerifier({ url });
    const failures: string[] = [];
    verifier.onFailure((failure) => failures.push(failure));
    expect(await answers(verifier, cases.slice(0, 6))).toEqual(outcomes(cases.slice(0, 6)));
    expect(failures).toEqual(['exited']);
    expect(verifier.onPool).toBe(true);
  });

  it('a proof with a line break or any character outside base64url is refused, and cannot spill into its batch', async () => {
    const verifier = new ProofVerifier();
    const [good0, , , good3] = cases;
    const [h, p, sig] = good0!.proof.split('.');
    // A line break would end a field of the packed batch: each of these would smuggle good3's proof in as a job of its own.
    const bad = [
      `${good0!.proof}\nPOST\n${HTU}\n${NOW}\n${good3!.proof}`,
      `${h}.${p}\n.${sig}`,
      `${h}.${p}.${sig}\n`,
      `${h}.${p}.${sig} `,
    ].map((proof) => verifier.check(proof, EXPECT));
    const good = answers(verifier, cases.slice(0, 6));
    for (const refused of await Promise.all(bad)) expect(refused).toHaveProperty('error', 'invalid_dpop_proof');
    expect(await good).toEqual(outcomes(cases.slice(0, 6)));
    // An expectation with a line break (never the server's own) is checked on the pool, not packed (packed, it
    // would shift every field after it): its answer is the proof's own (a URL parser drops the line break).
    expect(await verifier.check(good0!.proof, { ...EXPECT, htu: `${HTU}\n` })).toMatchObject({ jti: good0!.outcome });
    expect(await verifier.check(good0!.proof, { ...EXPECT, htm: 'POST\n' })).toHaveProperty('error', 'invalid_dpop_proof');
    await verifier.close();
  });

  it('the thread cannot even be created (Worker throws at once): the pool answers, and no exception escapes', async () => {
    const verifier = new ProofVerifier({ url: new URL('https://rotor.invalid/worker.js') });
    const failures: string[] = [];
    const stop = verifier.onFailure((failure) => failures.push(failure));
    verifier.onFailure(() => { throw new Error('a listener\'s own fault'); });
    expect(await answers(verifier, cases)).toEqual(outcomes(cases));
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
    expect(await pending).toEqual(outcomes(cases.slice(0, 6)));
    expect(verifier.onPool).toBe(false);
    await verifier.close();
  });

  it('after a failure the pool serves for retryAfterMs, then a new thread is tried', async () => {
    const url = workerFile('dies-once.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));");
    const verifier = new ProofVerifier({ url, retryAfterMs: 150 });
    expect(await answers(verifier, cases.slice(0, 4))).toEqual(outcomes(cases.slice(0, 4)));
    expect(verifier.onPool).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(verifier.onPool).toBe(false);
    writeFileSync(new URL(url), `import ${JSON.stringify(compiledVerifier.href)};`); // the real thread, this time
    expect(await answers(verifier, cases)).toEqual(outcomes(cases));
    expect(verifier.onPool).toBe(false);
    await verifier.close();
  });

  it('the thread goes silent: past the deadline the pool answers, and the thread is stopped', async () => {
    const url = workerFile('silent.mjs', "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => {});");
    const verifier = new ProofVerifier({ url, deadlineMs: 200 });
    const failures: string[] = [];
    verifier.onFailure((failure) => failures.push(failure));
    const started = Date.now();
    expect(await answers(verifier, cases.slice(0, 6))).toEqual(outcomes(cases.slice(0, 6)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // Later checks no longer wait for it.
    const again = Date.now();
    expect(await answers(verifier, cases.slice(0, 6))).toEqual(outcomes(cases.slice(0, 6)));
    expect(Date.now() - again).toBeLessThan(190);
    expect(failures).toEqual(['silent']); // its stopping is not a second failure
  });
});
