import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RotorError } from '../domain/errors.js';
import type { Api } from './api.js';
import { sendProblem } from './reply.js';

/** Where `npm run build` writes the browser client (packages/client), relative to the repository root. */
const BUNDLE = join('packages', 'client', 'dist', 'rotor-client.js');
const MANIFEST = join('packages', 'client', 'package.json');

export interface SdkBundle {
  source: Buffer;
  version: string;
  /** Pinned to the package version and the bytes: `"<version>-<sha256 prefix>"`. */
  etag: string;
}

/**
 * The built `@rotor/client` module, found by walking up from this file (src/http in a checkout run by
 * vitest, dist/src/http once built), or null when it has not been built.
 */
export function loadSdkBundle(from: string = dirname(fileURLToPath(import.meta.url))): SdkBundle | null {
  let dir = from;
  for (let i = 0; i < 6; i += 1) {
    const file = join(dir, BUNDLE);
    if (existsSync(file)) {
      const source = readFileSync(file);
      const version = String((JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as { version?: unknown }).version ?? '0.0.0');
      const digest = createHash('sha256').update(source).digest('base64url').slice(0, 16);
      return { source, version, etag: `"${version}-${digest}"` };
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

/** Browsers keep it 10 minutes, then revalidate with the ETag (a new release has a new one). */
const CACHE_CONTROL = 'public, max-age=600, must-revalidate';

/** SPEC §4.6: `GET /sdk/rotor-client.js`, the browser client as one ES module (CORS `*`: see cors.ts). */
export const sdkApi: Api = {
  name: 'sdk',
  renderError: (err, _request, reply) => sendProblem(reply, err),
  routes(app) {
    const bundle = loadSdkBundle();
    app.get('/sdk/rotor-client.js', async (request, reply) => {
      if (bundle === null) throw new RotorError('not_found', 'the browser client is not built: run npm run build');
      reply
        .header('Content-Type', 'text/javascript; charset=utf-8')
        .header('Cache-Control', CACHE_CONTROL)
        .header('ETag', bundle.etag)
        .header('X-Content-Type-Options', 'nosniff')
        // Pages that isolate themselves (COEP require-corp) may still import it.
        .header('Cross-Origin-Resource-Policy', 'cross-origin');
      const match = request.headers['if-none-match'];
      if (typeof match === 'string' && match.split(',').some((tag) => tag.trim().replace(/^W\//, '') === bundle.etag)) {
        return reply.code(304).send();
      }
      return reply.send(bundle.source);
    });
  },
};
