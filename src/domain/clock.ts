/** Injected time source, in milliseconds since the epoch. Tests pin and advance it. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests and tools: starts where you say and moves only when told. */
export class FixedClock implements Clock {
  constructor(private current: number = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.current;
  }
  advance(seconds: number): void {
    this.current += seconds * 1000;
  }
  set(ms: number): void {
    this.current = ms;
  }
}

export const toSeconds = (ms: number): number => Math.floor(ms / 1000);
