/**
 * `import { createRotor, rotorPlugin } from 'rotor'` (SPEC §10). Importing has no side effects: no
 * store is opened, no file written, no timer started, nothing logged, until `createRotor()` is called.
 * docs/library.md shows how to embed Rotor in a fastify server.
 */
export {
  createRotor, RotorError, ConfigError,
  type CreateRotorOptions, type RotorInstance, type TokenPair, type IssueInput, type RefreshInput, type AppRef,
  type AppView, type SigningKeyView, type SubjectView, type SessionView, type Introspection,
} from './library.js';
export { rotorPlugin, rotorWellKnown, type RotorPluginOptions } from './plugin.js';
export type { Clock } from './domain/clock.js';
export type { DpopInput } from './domain/engine.js';
export type { SubjectPatch } from './domain/subjects.js';
export type { Policy, Algorithm } from './domain/policy.js';
export type { ProfileName as Profile } from './dialects/index.js';
export type { RateLimits } from './http/rate_limit.js';
