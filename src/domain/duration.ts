const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90`, `90s`, `15m`, `1h`, `30d` into whole seconds; returns undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,10})([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 1);
  return Number.isSafeInteger(value) ? value : undefined;
}
