import type { TokenFormat } from './formats/format.js';
import type { CorePolicy, Policy, PolicyField, Profile } from './policy.js';
import type { Subject } from './types.js';

/**
 * What the domain knows of one dialect: the half of a `Dialect` (src/dialects/dialect.ts) that is
 * domain types only. The domain is handed a list of these (from src/dialects/index.ts, through
 * `Profiles`) and never imports a dialect; the HTTP half is `DialectHttp` (src/http/dialect.ts).
 */
export interface DialectDomain {
  /** The profile its apps have (`apps create --profile <name>`); also its refresh-id key label. Never rename one. */
  readonly profile: Profile;
  /** How its tokens are laid out (SPEC §3). */
  readonly format: TokenFormat;
  /** SPEC §3: its apps' defaults, over the core's (`CORE_DEFAULTS`). */
  readonly defaults: Partial<CorePolicy>;
  /** Policy fields of its own (`verifikMaxMonths`); every app's policy carries them, with their defaults. */
  readonly policyFields: readonly PolicyField[];
  /** SPEC §1: its renewal call carries no client authentication, so its apps cannot be confidential. */
  readonly keyless: boolean;
  /** SPEC §1: its apps are public unless created otherwise (JWTPlus's tokens live in the app's backend: not). */
  readonly publicByDefault: boolean;
  /**
   * The longest an access token of this dialect can live under `policy`, when a client can ask for more
   * than `accessTtl` (Verifik's N × 30 days): keys stay published that long after they retire.
   */
  longestAccessLifetime?(policy: Policy): number;
  /** Its own way of proving a subject at login, when it has one (FIB's Ed25519 signature). */
  readonly login?: LoginRule;
}

/**
 * A dialect's login proof (SPEC §4.4), checked by `Subjects.checkLogin`, which reads the subject, records
 * the failure and answers in the catalogue's codes. The rule itself is pure: no storage, no keys.
 */
export interface LoginRule<Presented = never> {
  /** The request field that names the subject (the error for a bad one names it). */
  readonly subjectField: string;
  /** Why `presented` cannot be a proof at all (checked before the store is read), or null. */
  malformed(presented: Presented): string | null;
  /** Whether `presented` proves `subject` (as stored: its registered keys, its status aside). */
  verifies(subject: Subject, presented: Presented): boolean;
  /** The `invalid_credentials` detail for a proof that does not verify. */
  readonly refusal: string;
}
