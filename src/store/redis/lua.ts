import * as catalog from './scripts/catalog.js';
import * as limits from './scripts/limits.js';
import * as prune from './scripts/prune.js';
import * as rotation from './scripts/rotation.js';
import * as sessions from './scripts/sessions.js';
import type { LuaScript } from './scripts/common.js';

export type { LuaScript } from './scripts/common.js';
export * from './scripts/catalog.js';
export * from './scripts/limits.js';
export * from './scripts/prune.js';
export * from './scripts/rotation.js';
export * from './scripts/sessions.js';

/** Every script the store runs (the KEYS check in test/store/redis_scripts.test.ts walks this list). */
export const ALL_SCRIPTS: readonly LuaScript[] = [catalog, sessions, rotation, limits, prune].flatMap((group) => Object.values(group));
