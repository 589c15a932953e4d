/**
 * Web origins (RFC 6454) as browsers write them in the `Origin` header: `scheme://host[:port]`, lower
 * case, without the scheme's default port, without path, query, fragment or userinfo. Allowed origins
 * (ROTOR_CORS_ORIGINS, policy `allowedOrigins`) are kept in this form and compared to a request's
 * `Origin` byte for byte: no pattern, no suffix or prefix match, no case folding of the request's value.
 */

/** `null` is the origin of sandboxed frames, `file:` pages, `data:` URLs and some redirects: any site can produce it. */
const NULL_ORIGIN = 'null';
const MAX_ORIGIN_LENGTH = 300;
const SHAPE = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?$/;

/** Why `text` is not an exact origin, or null when it is one. */
export function originProblem(text: string): string | null {
  if (text === NULL_ORIGIN) return '"null" is never allowed (sandboxed frames, file: pages and redirects all send it)';
  if (text.includes('*')) return 'wildcards are not allowed: list each origin exactly';
  if (text.length > MAX_ORIGIN_LENGTH) return `an origin is at most ${MAX_ORIGIN_LENGTH} characters`;
  const match = SHAPE.exec(text.toLowerCase());
  if (!match) {
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]+[/?#]/i.test(text)) return 'an origin has no path, query or trailing slash';
    return 'write scheme://host[:port] (an internationalised host in its xn-- form)';
  }
  const port = match[3];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return 'the port must be from 1 to 65535';
  return null;
}

/**
 * The canonical form of an allowed origin (lower case, default port dropped, IPv6 compressed as the URL
 * parser writes it), or null when `text` is not an exact origin (see `originProblem`).
 */
export function canonicalOrigin(text: string): string | null {
  if (originProblem(text) !== null) return null;
  const [, scheme = '', host = '', port] = SHAPE.exec(text.toLowerCase()) ?? [];
  if (scheme === 'http' || scheme === 'https') {
    try {
      const url = new URL(`${scheme}://${host}${port === undefined ? '' : `:${port}`}`);
      return url.origin === NULL_ORIGIN ? null : url.origin;
    } catch {
      return null;
    }
  }
  // Other schemes (chrome-extension://, moz-extension://, capacitor://, tauri://) have no default port.
  return `${scheme}://${host}${port === undefined ? '' : `:${port}`}`;
}

/** The origin of an absolute URL (ROTOR_ISSUER), or null. */
export function originOfUrl(url: string): string | null {
  try {
    const origin = new URL(url).origin;
    return origin === NULL_ORIGIN ? null : origin;
  } catch {
    return null;
  }
}
