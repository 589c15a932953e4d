// @ts-check
/**
 * The floors: what this machine can do at all, with nothing of Rotor in the way.
 *
 *   FLOOR_MODE=sign    a plain node:http server that signs one ES256 JWT per request (node:crypto,
 *                      the key imported once) and returns a fresh random refresh token; no store.
 *   FLOOR_MODE=sqlite  the same plus a naive better-sqlite3 rotation: WAL, synchronous=NORMAL, one
 *                      transaction of UPDATE … RETURNING (consume the parent) + INSERT (the child).
 *
 * POST /refresh {refreshToken} → {accessToken, refreshToken}; POST /setup {count} → {states:[…]} mints
 * starting tokens; GET /healthz. FLOOR_FAULT=duplicate|status|same makes every 50th answer wrong (a
 * token seen before, a 500, the presented token) so the smoke test can prove the generator's checks.
 */
import Database from 'better-sqlite3';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';

const mode = process.env.FLOOR_MODE ?? 'sign';
const fault = process.env.FLOOR_FAULT ?? 'none';
const port = Number(process.env.PORT ?? 0);

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = randomBytes(8).toString('hex');
const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid })).toString('base64url');

/** @param {string} sid */
function accessToken(sid) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: 'http://floor', sub: 'bench-user', sid, jti: randomBytes(12).toString('base64url'), iat: now, nbf: now, exp: now + 900 };
  const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

const newRefresh = () => `rt_${randomBytes(32).toString('base64url')}`;
const idOf = (/** @type {string} */ token) => createHash('sha256').update(token).digest('base64url');

/** @type {Database.Database | null} */
let db = null;
/** @type {((token: string) => { sid: string, next: string } | null) | null} */
let rotate = null;
/** @type {(token: string, sid: string) => void} */
let store = () => {};

if (mode === 'sqlite') {
  db = new Database(join(process.env.FLOOR_DIR ?? '.', 'floor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE IF NOT EXISTS refresh (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, consumed_at INTEGER
  ) WITHOUT ROWID`);
  const consume = db.prepare('UPDATE refresh SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL AND expires_at > ? RETURNING session_id');
  const insert = db.prepare('INSERT INTO refresh (id, session_id, issued_at, expires_at, consumed_at) VALUES (?, ?, ?, ?, NULL)');
  store = (token, sid) => {
    const now = Date.now();
    insert.run(idOf(token), sid, now, now + 30 * 86400_000);
  };
  /** One transaction: the conditional UPDATE decides, the INSERT adds the child. */
  const rotateTx = db.transaction((/** @type {string} */ parent, /** @type {string} */ child) => {
    const now = Date.now();
    const row = /** @type {{session_id: string} | undefined} */ (consume.get(now, idOf(parent), now));
    if (!row) return null;
    insert.run(idOf(child), row.session_id, now, now + 30 * 86400_000);
    return row.session_id;
  });
  rotate = (parent) => {
    const next = newRefresh();
    const sid = rotateTx(parent, next);
    return sid === null ? null : { sid, next };
  };
}

let served = 0;
/** @type {string[]} */
const recent = [];

const server = createServer((req, res) => {
  const chunks = /** @type {Buffer[]} */ ([]);
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const send = (/** @type {number} */ status, /** @type {unknown} */ body) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    };
    if (req.method === 'GET' && req.url === '/healthz') return send(200, { ok: true });
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      return send(400, { error: 'invalid_request' });
    }
    if (req.method === 'POST' && req.url === '/setup') {
      const states = [];
      for (let i = 0; i < Number(body.count ?? 0); i += 1) {
        const refresh = newRefresh();
        const sid = randomBytes(16).toString('hex');
        store(refresh, sid);
        states.push({ refresh, access: accessToken(sid) });
      }
      return send(200, { states });
    }
    if (req.method !== 'POST' || req.url !== '/refresh') return send(404, { error: 'not_found' });
    const presented = body.refreshToken;
    if (typeof presented !== 'string') return send(400, { error: 'invalid_request' });
    served += 1;
    const faulty = fault !== 'none' && served % 50 === 0;
    if (faulty && fault === 'status') return send(500, { error: 'injected' });
    let sid;
    let next;
    if (rotate) {
      const rotated = rotate(presented);
      if (rotated === null) return send(400, { error: 'invalid_grant' });
      ({ sid, next } = rotated);
    } else {
      sid = 'session';
      next = newRefresh();
    }
    if (faulty && fault === 'duplicate' && recent.length > 0) next = /** @type {string} */ (recent[0]);
    if (faulty && fault === 'same') next = presented;
    if (recent.length < 8) recent.push(next);
    return send(200, { accessToken: accessToken(sid), refreshToken: next, tokenType: 'Bearer', expiresIn: 900 });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`READY ${typeof address === 'object' && address ? address.port : port}\n`);
});
const stop = () => server.close(() => {
  db?.close();
  process.exit(0);
});
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
