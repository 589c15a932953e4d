/**
 * The path of a request target, as raw as it came but without what could hold a secret: no query
 * string, no fragment, and for an absolute-form target (RFC 9112 §3.2.2, `http://user:pw@host/p?q`)
 * no scheme, userinfo or host either.
 */
export function pathOfTarget(target: string): string {
  return barePath(target).slice(0, 200);
}

/**
 * The path as the router reads it: split at its raw slashes, each segment percent-decoded on its own
 * (an escaped slash stays inside its segment, `a%2Fb` is one parameter, as find-my-way matches it). A
 * segment that does not decode, or decodes to something holding a slash, keeps its raw spelling, so the
 * segments never move. For choices that only shape an answer (preflight headers, which API's envelope a
 * 405 comes in), never for a decision: those go by the route the router matched.
 */
export function decodedPath(target: string): string {
  return barePath(target).split('/').map((segment) => {
    try {
      const decoded = decodeURIComponent(segment);
      return decoded.includes('/') ? segment : decoded;
    } catch {
      return segment;
    }
  }).join('/');
}

function barePath(target: string): string {
  let path = target;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(path);
  if (scheme) {
    const rest = path.slice(scheme[0].length);
    const end = rest.search(/[/?#]/);
    path = end >= 0 && rest[end] === '/' ? rest.slice(end) : '/';
  }
  return path.split(/[?#]/, 1)[0] || '/';
}
