import type { DialectDomain } from '../domain/dialect.js';
import type { DialectHttp } from '../http/dialect.js';

/**
 * Everything one dialect is, in one object of the same shape for every dialect (docs/architecture.md):
 * - `domain`: its token format, policy fields and defaults, confidentiality rule, login proof — domain
 *   types only, handed to the domain (`new Rotor({ dialects })`);
 * - `http`: its routes and envelope (an `Api`), which routes are renewals/logins/issuance for the rate
 *   limiter, where CORS cannot see its app — handed to the server (`buildServer({ dialects })`).
 * `name` is its profile (`domain.profile`) and its API's name (`http.api.name`).
 */
export interface Dialect<Name extends string = string> {
  readonly name: Name;
  readonly domain: DialectDomain;
  readonly http: DialectHttp;
}
