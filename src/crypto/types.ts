/**
 * The primitive types the crypto room speaks in. The domain re-exports them (`domain/types.ts`,
 * `domain/policy.ts`), so an import never runs from crypto up to the domain.
 */

/** A decoded JSON object: a JWT header or payload, a JWK. */
export type JsonObject = Record<string, unknown>;

/** The signing algorithms Rotor issues tokens with. */
export const ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'HS256'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];
