import type { Profile } from '../policy.js';
import type { TokenFormat } from './format.js';
import { jwtplusFormat } from './jwtplus.js';
import { nativeFormat } from './native.js';
import { verifikFormat } from './verifik.js';
import { floliveFormat } from './flolive.js';
import { fibFormat } from './fib.js';
import { abitmediaFormat } from './abitmedia.js';

export type { TokenFormat, MintContext, JwtParts, SessionLocator } from './format.js';

/**
 * Token layout per profile. Dialect profiles register here; until one is registered its apps use
 * the native layout (see issue "dialects").
 */
const FORMATS: Partial<Record<Profile, TokenFormat>> = { native: nativeFormat };
FORMATS.verifik = verifikFormat;
FORMATS.jwtplus = jwtplusFormat;
FORMATS.flolive = floliveFormat;
FORMATS.fib = fibFormat;
FORMATS.abitmedia = abitmediaFormat;

export function formatFor(profile: Profile): TokenFormat {
  return FORMATS[profile] ?? nativeFormat;
}

export function registerFormat(profile: Profile, format: TokenFormat): void {
  FORMATS[profile] = format;
}
