// TODO(wt16b-merge): a stopgap, and the one place the domain still imports src/dialects/. The engine
// (engine.ts) and Rotor.issueSession (rotor.ts) read token formats from this static registry until the
// wt16b branch lands, which hands them a `formats` registry through their options; pass them the
// runtime's `Profiles` (built from src/dialects/index.ts; it has `formatFor(profile)`) and delete this file.
import type { Profile } from '../policy.js';
import type { TokenFormat } from './format.js';
import { nativeFormat } from './native.js';
import { verifikFormat } from '../../dialects/verifik/format.js';
import { jwtplusFormat } from '../../dialects/jwtplus/format.js';
import { floliveFormat } from '../../dialects/flolive/format.js';
import { fibFormat } from '../../dialects/fib/format.js';
import { abitmediaFormat } from '../../dialects/abitmedia/format.js';

export type { ChainIdLayout, TokenFormat, MintContext, JwtParts, SessionLocator } from './format.js';

const FORMATS: ReadonlyMap<Profile, TokenFormat> = new Map([
  ['native', nativeFormat],
  ['verifik', verifikFormat],
  ['jwtplus', jwtplusFormat],
  ['flolive', floliveFormat],
  ['fib', fibFormat],
  ['abitmedia', abitmediaFormat],
]);

export function formatFor(profile: Profile): TokenFormat {
  const format = FORMATS.get(profile);
  if (!format) throw new Error(`no dialect serves the profile ${profile}`);
  return format;
}
