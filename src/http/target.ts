/**
 * The path of a request target, as raw as it came but without what could hold a secret: no query
 * string, no fragment, and for an absolute-form target (RFC 9112 §3.2.2, `http://user:pw@host/p?q`)
 * no scheme, userinfo or host either.
 */
export function pathOfTarget(target: string): string {
  return barePath(target).slice(0, 200);
}

/**
 * The path the router matches (percent-decoded, whole); an undecodable one as it stands. For choices that
 * only shape an answer (preflight headers, which API's envelope a 405 comes in), never for a decision.
 */
export function decodedPath(target: string): string {
  const path = barePath(target);
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
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
