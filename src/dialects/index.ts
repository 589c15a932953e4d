import type { DialectDomain } from '../domain/dialect.js';
import type { DialectHttp } from '../http/dialect.js';
import { abitmedia } from './abitmedia/index.js';
import type { Dialect } from './dialect.js';
import { fib } from './fib/index.js';
import { flolive } from './flolive/index.js';
import { jwtplus } from './jwtplus/index.js';
import { verifik } from './verifik/index.js';

export type { Dialect } from './dialect.js';

/**
 * Every dialect Rotor speaks, in the order profiles are listed (`profile must be one of native, …`)
 * and their policy fields stand in a policy. A new dialect is one folder and one line here.
 */
const LIST = [verifik, jwtplus, flolive, fib, abitmedia] as const;
export const DIALECTS: readonly Dialect[] = LIST;

/** The profiles this build serves, as a type (the package's public `Profile`). */
export type ProfileName = 'native' | (typeof LIST)[number]['name'];

/** The domain's half of each dialect, for `new Rotor({ dialects })`. */
export const dialectDomains = (dialects: readonly Dialect[] = DIALECTS): DialectDomain[] => dialects.map((d) => d.domain);

/** The HTTP half of each dialect, for `buildServer({ dialects })`. */
export const dialectHttps = (dialects: readonly Dialect[] = DIALECTS): DialectHttp[] => dialects.map((d) => d.http);
