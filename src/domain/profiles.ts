import type { DialectDomain } from './dialect.js';
import { invalidRequest } from './errors.js';
import type { TokenFormat } from './formats/format.js';
import { nativeFormat } from './formats/native.js';
import { applyPolicyPatch, CORE_DEFAULTS, withDialectFields, type Policy, type PolicyField, type Profile } from './policy.js';

/**
 * The native profile: Rotor's own API, built in rather than a dialect (the native and OAuth routes are
 * the core's; every deployment serves them). It goes first in every list of profiles.
 */
const NATIVE: DialectDomain = {
  profile: 'native', format: nativeFormat, defaults: {}, policyFields: [], keyless: false, publicByDefault: true,
};

/**
 * Every profile the domain serves: native and the dialects it was handed. What used to be switches on
 * profile names (defaults, policy fields, who may be confidential, how long keys stay published) is
 * read from here, so that a dialect is one folder and one line in src/dialects/index.ts.
 */
export class Profiles {
  private readonly byName = new Map<Profile, DialectDomain>();
  private readonly fields = new Map<string, PolicyField>();
  private readonly defaultsByName = new Map<Profile, Policy>();

  constructor(dialects: readonly DialectDomain[]) {
    for (const dialect of [NATIVE, ...dialects]) {
      if (this.byName.has(dialect.profile)) throw new Error(`two dialects are named ${dialect.profile}`);
      this.byName.set(dialect.profile, dialect);
      for (const field of dialect.policyFields) {
        if (this.fields.has(field.name) || field.name in CORE_DEFAULTS) throw new Error(`policy field ${field.name} is declared twice`);
        this.fields.set(field.name, field);
      }
    }
    const base = withDialectFields(CORE_DEFAULTS, [...this.fields.values()]);
    for (const [name, dialect] of this.byName) this.defaultsByName.set(name, { ...base, ...dialect.defaults });
  }

  /** `native` first, then the dialects in the order given. */
  get names(): Profile[] {
    return [...this.byName.keys()];
  }

  has(name: unknown): name is Profile {
    return typeof name === 'string' && this.byName.has(name);
  }

  /** The profile `name`, or `invalid_request` listing them. */
  parse(name: unknown): Profile {
    if (!this.has(name)) throw invalidRequest(`profile must be one of ${this.names.join(', ')}`);
    return name;
  }

  private dialect(profile: Profile): DialectDomain {
    const dialect = this.byName.get(profile);
    if (!dialect) throw new Error(`no dialect serves the profile ${profile}`);
    return dialect;
  }

  /** The token layout of `profile`: the registry the engine reads (`formatFor`). */
  formatFor(profile: Profile): TokenFormat {
    return this.dialect(profile).format;
  }

  /** SPEC §3: `profile`'s defaults (a fresh copy). */
  defaults(profile: Profile): Policy {
    this.dialect(profile);
    return { ...this.defaultsByName.get(profile)! };
  }

  /** A caller's patch over `base`: the core's fields and every dialect's, validated. */
  applyPatch(base: Policy, patch: unknown): Policy {
    return applyPolicyPatch(base, patch, this.fields);
  }

  /**
   * A stored policy with the fields a later release added filled in with the profile's defaults. A
   * dialect app written before `dpopNonce: true` was refused for it reads as false, which it always meant
   * (its endpoints carry no proof), so its next update is not refused for a value it never set.
   */
  complete(profile: Profile, stored: Partial<Policy>): Policy {
    const policy = { ...this.defaultsByName.get(profile), ...stored } as Policy;
    if (policy.dpopNonce && this.formatFor(profile).bindsAccessTokens !== true) policy.dpopNonce = false;
    return policy;
  }

  /** SPEC §1: whether `profile`'s renewal call carries no client authentication. */
  isKeyless(profile: Profile): boolean {
    return this.dialect(profile).keyless;
  }

  publicByDefault(profile: Profile): boolean {
    return this.dialect(profile).publicByDefault;
  }

  /**
   * The longest any token signed under this policy can live: how long a retiring key stays published.
   * Opaque refresh tokens are not signed; JWT ones are; a dialect may let access tokens outlive accessTtl.
   */
  longestTokenLifetime(profile: Profile, policy: Policy): number {
    const dialect = this.dialect(profile);
    const refresh = dialect.format.refreshFormat === 'jwt' ? policy.refreshTtl ?? 0 : 0;
    return Math.max(policy.accessTtl, dialect.longestAccessLifetime?.(policy) ?? 0, refresh);
  }
}
