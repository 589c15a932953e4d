// Issue 16: callers use Rotor's operations; its store, keyring and engine are its own. `internals` exists
// for tests only, and the domain takes its token formats by injection rather than importing the dialects'.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { domainRotor } from '../helpers/rotor.js';

const SRC = resolve(import.meta.dirname, '../../src');
const walk = (dir: string): string[] => readdirSync(dir).flatMap((name) => {
  const path = join(dir, name);
  return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') ? [path] : [];
});

describe('Rotor operations', () => {
  it('no source file reaches through Rotor to its store, keyring, engine or internals', () => {
    const offenders = walk(SRC).filter((file) => /(?<!['"\w])rotor\.(store|keyring|engine|internals)\b/.test(readFileSync(file, 'utf8')));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });

  it('the domain imports no token format table: it is handed a FormatRegistry', () => {
    const offenders = walk(join(SRC, 'domain'))
      .filter((file) => !relative(SRC, file).startsWith('domain/formats/'))
      .filter((file) => /from '\.{1,2}\/(?:\.\.\/)?formats\/index\.js'/.test(readFileSync(file, 'utf8')));
    expect(offenders.map((f) => relative(SRC, f))).toEqual([]);
  });

  it('checkAccess answers an expected refusal as a value, not an exception', async () => {
    const { rotor } = await domainRotor();
    expect(await rotor.checkAccess(undefined)).toEqual({ ok: false, reason: 'malformed' });
    expect(await rotor.checkAccess('not.a.jwt')).toEqual({ ok: false, reason: 'invalid' });
    await rotor.close();
  });
});
