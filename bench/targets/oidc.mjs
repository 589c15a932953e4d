// @ts-check
/**
 * node-oidc-provider (the pinned devDependency) in its most favourable setting for this benchmark:
 * its own in-memory adapter (nothing durable), `rotateRefreshToken: true`, one confidential client
 * (client_secret_basic, like Rotor's /oauth2/token row), access tokens as ES256 JWTs for one resource
 * server (so both sides sign one ES256 JWT per refresh), and no `openid` scope (no ID token to sign).
 *
 * Its in-memory store: the shipped MemoryAdapter is an LRU of 1,000 entries; under 64 chains rotating
 * thousands of times a second it evicts live grants and answers `invalid_grant` (hundreds of errors in
 * a 2 s run). So it gets `MapAdapter` below: the same adapter contract over unbounded Maps, with a
 * grant index for revocation — cheaper than the shipped one, never evicting, storing nothing durably.
 *
 * POST /bench/setup {count} mints starting refresh tokens through the provider's own models (a Grant
 * and a RefreshToken each, as the authorization-code grant would have left them); GET /healthz.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const issuer = `http://127.0.0.1:${port}`;
export const CLIENT_ID = 'bench';
export const CLIENT_SECRET = 'bench-client-secret-0123456789abcdef';
const RESOURCE = 'urn:rotor:bench';

// Encoded by the generation (see bench/dpop.mjs: a later KeyObject#export can deadlock Node 20).
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { format: 'jwk' }, publicKeyEncoding: { format: 'jwk' } });
const jwk = { .../** @type {object} */ (/** @type {unknown} */ (privateKey)), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const epoch = () => Math.floor(Date.now() / 1000);
/** @type {Map<string, Map<string, { payload: any, expiresAt: number }>>} */
const tables = new Map();
/** @type {Map<string, Set<string>>} grant id → keys "Model:id" of what it granted */
const grants = new Map();

/** node-oidc-provider's Adapter contract over Maps (upsert, find, consume, destroy, revokeByGrantId, …). */
class MapAdapter {
  /** @param {string} model */
  constructor(model) {
    this.model = model;
    this.table = tables.get(model) ?? new Map();
    tables.set(model, this.table);
  }

  /** @param {string} id @param {any} payload @param {number} expiresIn */
  async upsert(id, payload, expiresIn) {
    this.table.set(id, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      const members = grants.get(payload.grantId) ?? new Set();
      members.add(`${this.model}:${id}`);
      grants.set(payload.grantId, members);
    }
  }

  /** @param {string} id */
  async find(id) {
    const entry = this.table.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.table.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  /** @param {string} uid */
  async findByUid(uid) {
    for (const [, entry] of this.table) if (entry.payload.uid === uid) return entry.payload;
    return undefined;
  }

  /** @param {string} userCode */
  async findByUserCode(userCode) {
    for (const [, entry] of this.table) if (entry.payload.userCode === userCode) return entry.payload;
    return undefined;
  }

  /** @param {string} id */
  async consume(id) {
    const entry = this.table.get(id);
    if (entry) entry.payload.consumed = epoch();
  }

  /** @param {string} id */
  async destroy(id) {
    this.table.delete(id);
  }

  /** @param {string} grantId */
  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) {
      const at = key.indexOf(':');
      tables.get(key.slice(0, at))?.delete(key.slice(at + 1));
    }
    grants.delete(grantId);
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: CLIENT_ID, client_secret: CLIENT_SECRET, grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'], redirect_uris: ['https://client.example/cb'], token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [/** @type {any} */ (jwk)] },
  scopes: ['offline_access', 'api'],
  rotateRefreshToken: true,
  ttl: { AccessToken: 900, RefreshToken: 30 * 86400, Grant: 30 * 86400 },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api', audience: RESOURCE, accessTokenTTL: 900, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider server_error: ${err}\n`));

async function mint(/** @type {number} */ count) {
  const client = await provider.Client.find(CLIENT_ID);
  if (!client) throw new Error('bench client missing');
  const states = [];
  for (let i = 0; i < count; i += 1) {
    const accountId = `user-${i}`;
    const grant = new provider.Grant({ accountId, clientId: CLIENT_ID });
    grant.addOIDCScope('offline_access');
    grant.addResourceScope(RESOURCE, 'api');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      client, accountId, grantId, gty: 'authorization_code', scope: 'offline_access api', resource: RESOURCE,
      iiat: Math.floor(Date.now() / 1000), authTime: Math.floor(Date.now() / 1000),
    });
    states.push({ refresh: await token.save() });
  }
  return states;
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    return;
  }
  if (req.method === 'POST' && req.url === '/bench/setup') {
    const chunks = /** @type {Buffer[]} */ ([]);
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const { count } = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      mint(Number(count ?? 0)).then(
        (states) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ states })),
        (err) => res.writeHead(500).end(String(err)),
      );
    });
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`READY ${port}\n`));
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
