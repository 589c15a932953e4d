import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * Node 20 can deadlock for good when a KeyObject is exported as a JWK while the garbage collector
 * finalises an earlier key generation (seen here: generateKeyPairSync + export({ format: 'jwk' }) in a
 * loop hangs before its 2,000th key, three runs of three, and with a DER private and a JWK public export, as Rotor exported them, within 15,000; it also hung a bench run). Rotor's signing
 * keys are encoded by the generation itself. This runs generateKeyMaterial many times over, under
 * allocation pressure, in a process of its own that must finish.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

describe('signing key generation', () => {
  it('never deadlocks: 40,000 ES256 and 2,000 EdDSA keys in a row, under allocation pressure', async () => {
    const module = pathToFileURL(join(ROOT, 'dist/src/crypto/signing_key.js')).href;
    const script = `
      const { generateKeyMaterial } = await import(${JSON.stringify(module)});
      let junk = [];
      for (let i = 0; i < 42000; i++) {
        const key = generateKeyMaterial(i < 40000 ? 'ES256' : 'EdDSA', 'k' + i);
        if (typeof key.publicJwk.x !== 'string' || !Buffer.isBuffer(key.secret)) throw new Error('bad key ' + i);
        junk.push(key, 'x'.repeat(200) + i);
        if (junk.length > 2000) junk = [];
      }
      process.stdout.write('done');`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 });
    expect(stdout).toBe('done');
  }, 70_000);
});
