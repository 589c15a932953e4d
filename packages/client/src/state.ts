/**
 * The state every context of an origin shares (what is stored under `storageKey` and announced on the
 * channel), the storages it lives in, and what this context offers to coordinate with the others.
 */
import type { SignedOutReason, StorageLike } from './types.js';

/** What is stored under `storageKey`. `gen` grows by one with every change, across all contexts. */
export interface Stored {
  v: 1;
  gen: number;
  rev: string;
  by: 'set' | 'refresh' | 'signed_out';
  accessToken?: string;
  tokenType?: string;
  refreshToken?: string | null;
  sessionId?: string;
  receivedAt?: number;
  accessExpiresAt?: number;
  refreshExpiresAt?: number | null;
  reason?: SignedOutReason;
  /** The latest `DPoP-Nonce` Rotor sent with a pair, for the next holder's first proof. */
  dpopNonce?: string;
}

/** What contexts post on the BroadcastChannel: a new state, or a lock holder's heartbeat. */
export type Message = { type: 'state'; state: Stored } | { type: 'beat' };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const randomId = () => Math.random().toString(36).slice(2) + Date.now().toString(36);

export function memoryStorage(): StorageLike {
  const map = new Map<string, string>();
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v), removeItem: (k) => void map.delete(k) };
}

/** `window.localStorage`, when there is a window and it can be used (sandboxed frames and some private modes throw). */
export function windowStorage(): Storage | null {
  try {
    const g = globalThis as { window?: { localStorage?: Storage } };
    return g.window?.localStorage ?? null;
  } catch {
    return null;
  }
}

/** A browser window or worker (not Node, not React Native): there, contexts of one origin coordinate. */
export function isWebContext(): boolean {
  const g = globalThis as { window?: unknown; document?: unknown; importScripts?: unknown; WorkerGlobalScope?: unknown };
  return (g.window !== undefined && g.document !== undefined) || typeof g.importScripts === 'function' || g.WorkerGlobalScope !== undefined;
}

export function webLocks(): LockManager | null {
  const nav = (globalThis as { navigator?: { locks?: LockManager } }).navigator;
  return nav?.locks && typeof nav.locks.request === 'function' ? nav.locks : null;
}

export function parse(text: string | null | undefined): Stored | null {
  if (!text) return null;
  try {
    const value = JSON.parse(text) as Stored;
    return value && value.v === 1 && typeof value.gen === 'number' ? value : null;
  } catch {
    return null;
  }
}

export const newer = (a: Stored | null, b: Stored | null): Stored | null => (!a ? b : !b ? a : b.gen > a.gen ? b : a);
