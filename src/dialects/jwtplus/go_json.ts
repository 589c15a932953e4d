/**
 * JSON exactly as Go's encoding/json writes a map (JWTPlus builds its tokens from maps): keys sorted by
 * their UTF-8 bytes at every depth, `<`, `>`, `&`, U+2028 and U+2029 escaped as \u00XX, -0 kept.
 */
export function goJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : JSON.stringify(value);
  if (typeof value === 'string') return escapeGo(JSON.stringify(value));
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${keys.map((k) => `${escapeGo(JSON.stringify(k))}:${goJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

const escapeGo = (json: string): string =>
  json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
