import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RotorError } from '../../domain/errors.js';
import type { Api } from '../api.js';
import { sendProblem } from '../reply.js';
import { CONSOLE_CSS, CONSOLE_HTML, FAVICON_SVG } from './page.js';

/**
 * The console's Content-Security-Policy: its own scripts, styles and API only, no inline script or
 * style (not even a style attribute), no eval, no plugins, never framed (clickjacking), no `<base>`
 * rewriting, no form that could submit (the token field could never travel in a URL), and Trusted
 * Types required: an `innerHTML` assignment, were one ever written, throws instead of parsing markup.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Headers of every console response (the page and its files). */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const asset = (body: string | Buffer, type: string): Asset => {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"` };
};

/**
 * The console's modules, compiled by `tsc` from src/http/console/ui/ next to this file (dist), or, when
 * this file runs from the sources (vitest), from the build's copy. Read once; a module is served only
 * by its exact name (`[a-z_]+.js`), so no path reaches anything else on disk.
 */
export function loadConsoleModules(from: string = dirname(fileURLToPath(import.meta.url))): Map<string, Asset> | null {
  const candidates = [join(from, 'ui')];
  for (let dir = from, i = 0; i < 6; i += 1, dir = dirname(dir)) candidates.push(join(dir, 'dist', 'src', 'http', 'console', 'ui'));
  const found = candidates.find((dir) => existsSync(join(dir, 'main.js')));
  if (!found) return null;
  const modules = new Map<string, Asset>();
  for (const name of readdirSync(found)) {
    if (/^[a-z_]+\.js$/.test(name)) modules.set(name, asset(readFileSync(join(found, name)), 'text/javascript; charset=utf-8'));
  }
  return modules;
}

function send(request: FastifyRequest, reply: FastifyReply, file: Asset, cache: string): FastifyReply {
  for (const [name, value] of Object.entries(CONSOLE_HEADERS)) reply.header(name, value);
  reply.header('Content-Type', file.type).header('Cache-Control', cache).header('ETag', file.etag);
  const match = request.headers['if-none-match'];
  if (typeof match === 'string' && match.split(',').some((tag) => tag.trim() === file.etag)) return reply.code(304).send();
  return reply.send(file.body);
}

/**
 * The web console (issue 17) at `/console`, served only when ROTOR_ADMIN_TOKEN is set. It is a page and
 * its modules, nothing more: it holds no data and no power of its own. The operator signs in with the
 * admin token, which the page keeps in the tab's sessionStorage and sends as `Authorization: Bearer` to
 * the admin API (§4.3) — never a cookie, so no other site can make the browser use it (CSRF), and
 * never in a URL, so it cannot reach a log, a history or a Referer. docs/console.md.
 */
export const consoleApi: Api = {
  name: 'console',
  renderError: (err, _request, reply) => {
    for (const [name, value] of Object.entries(CONSOLE_HEADERS)) reply.header(name, value);
    return sendProblem(reply, err);
  },
  routes(app, ctx) {
    if (ctx.config.adminToken === null) return;
    const page = asset(CONSOLE_HTML, 'text/html; charset=utf-8');
    const css = asset(CONSOLE_CSS, 'text/css; charset=utf-8');
    const icon = asset(FAVICON_SVG, 'image/svg+xml');
    const modules = loadConsoleModules();

    // The page is never cached (a new release's page must not meet an old module); its files revalidate.
    app.get('/console', async (request, reply) => send(request, reply, page, 'no-store'));
    app.get('/console/console.css', async (request, reply) => send(request, reply, css, 'no-cache'));
    app.get('/console/favicon.svg', async (request, reply) => send(request, reply, icon, 'no-cache'));
    app.get('/console/ui/:file', async (request, reply) => {
      const file = modules?.get((request.params as { file: string }).file);
      if (!modules) throw new RotorError('not_found', 'the console is not built: run npm run build');
      if (!file) throw new RotorError('not_found', 'no such console file');
      return send(request, reply, file, 'no-cache');
    });
  },
};
