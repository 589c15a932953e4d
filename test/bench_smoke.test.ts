import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// The harness is plain ESM JavaScript (bench/ is not part of the TypeScript build).
// @ts-expect-error no declaration file for the .mjs harness
import { formatTable, processTree, ROOT, runRow } from '../bench/harness.mjs';
// @ts-expect-error no declaration file for the .mjs rows
import { ROWS } from '../bench/rows.mjs';

/** Quick mode: a few connections, one second of warm-up and one of load. No timing is asserted. */
const QUICK = { durationSeconds: 1, warmupSeconds: 1, connections: 8 };

type Row = Record<string, unknown>;
const floor = (fault: string): Row => ({
  id: `floor-${fault}`, label: `floor (${fault})`, target: 'floor', protocol: 'floor', floorMode: 'sign', fault,
});

describe('bench harness (quick mode)', () => {
  it('chains tokens through the sign-only floor with every answer accepted', async () => {
    const result = await runRow(floor('none'), QUICK);
    expect(result.skipped).toBeUndefined();
    expect(result.ok).toBeGreaterThan(0);
    expect(result.errors).toBe(0);
    expect(result.rssMb).toBeGreaterThan(0);
    expect(formatTable([result])).toContain('floor (none)');
  }, 60_000);

  it('flags a token that came back twice (duplicate)', async () => {
    const result = await runRow(floor('duplicate'), QUICK);
    expect(result.reasons['a token seen before came back (duplicate)']).toBeGreaterThan(0);
    expect(result.errors).toBeGreaterThan(0);
  }, 60_000);

  it('flags an answer that is not 200', async () => {
    const result = await runRow(floor('status'), QUICK);
    expect(result.reasons['status 500']).toBeGreaterThan(0);
    expect(result.errors).toBe(result.reasons['status 500']);
  }, 60_000);

  it('flags the presented token handed back as the new one', async () => {
    const result = await runRow(floor('same'), QUICK);
    expect(result.reasons['the presented token came back']).toBeGreaterThan(0);
  }, 60_000);

  it.skipIf(!existsSync(join(ROOT, 'dist/src/cli/main.js')))('drives a real Rotor (native /v1/refresh on SQLite) without errors', async () => {
    const result = await runRow(
      { id: 'native-sqlite', label: 'Rotor native', target: 'rotor', protocol: 'native', store: 'sqlite' },
      QUICK,
    );
    expect(result.skipped).toBeUndefined();
    expect(result.errors).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
  }, 60_000);

  // The DPoP row (issue 15): a fresh proof per call by each session's own key. The harness's own checks
  // throw if the probe is not answered DPoP, if a replayed proof, no proof or another key's proof is not
  // refused, or if the replay cache holds fewer proofs than refreshes were accepted; the nonce row's, if a
  // proof without the server's nonce is not refused use_dpop_nonce with one, or an answer carries no next one.
  it.skipIf(!existsSync(join(ROOT, 'dist/src/cli/main.js'))).each(['native-dpop-sqlite', 'native-dpop-nonce-sqlite', 'oauth2-dpop-sqlite'])('drives the DPoP row %s: every answer DPoP-typed, a replay refused, one replay-cache entry per refresh', async (id) => {
    const row = ROWS.find((r: Row) => r.id === id);
    const result = await runRow(row, QUICK);
    expect(result.skipped).toBeUndefined();
    expect(result.errors).toBe(0);
    expect(result.ok).toBeGreaterThan(0);
    expect(result.dpopProofs).toBeGreaterThanOrEqual(result.ok);
  }, 60_000);

  it('leaves no server or load generator process behind', () => {
    expect(processTree(process.pid).slice(1).filter((pid: number) => existsSync(`/proc/${pid}/cmdline`))).toEqual([]);
  });
});
