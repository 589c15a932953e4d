import type { Profile } from '../policy.js';
import type { TokenFormat } from './format.js';
import { jwtplusFormat } from '../../dialects/jwtplus/format.js';
import { nativeFormat } from './native.js';
import { verifikFormat } from '../../dialects/verifik/format.js';
import { floliveFormat } from '../../dialects/flolive/format.js';
import { fibFormat } from '../../dialects/fib/format.js';
import { abitmediaFormat } from '../../dialects/abitmedia/format.js';

export type { ChainIdLayout, TokenFormat, MintContext, JwtParts, SessionLocator } from './format.js';

/** Token layout per profile: every profile has one, so a missing entry is a compile error. */
const FORMATS: Record<Profile, TokenFormat> = {
  native: nativeFormat,
  verifik: verifikFormat,
  jwtplus: jwtplusFormat,
  flolive: floliveFormat,
  fib: fibFormat,
  abitmedia: abitmediaFormat,
};

export function formatFor(profile: Profile): TokenFormat {
  return FORMATS[profile];
}
