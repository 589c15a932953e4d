import type { TokenFormat } from './formats/format.js';
import type { Profile } from './policy.js';

/**
 * The token layouts the domain works with, one per profile, handed to it by the composition root
 * (runtime, library) so that the domain never imports a dialect.
 */
export interface FormatRegistry {
  formatFor(profile: Profile): TokenFormat;
}

