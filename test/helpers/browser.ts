// Chromium for the tests that need a browser (the client in test/browser/, the console), and the web
// app's page the client tests load it into: one place to start them and to close them again.
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import type { TestServer } from './server.js';

/** Debian's Chromium (`apt-get install chromium`); .ci/run installs it when it is missing. */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Skipped only where there is no Chromium and this is not CI; in CI a missing Chromium fails the suite. */
export function browserAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must run the browser tests (apt-get install -y chromium; .ci/run does it)`);
  return false;
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * Chromium for the tests of one describe block: launched before them, closed after them. `browser` is
 * there from the first beforeAll the block registers after this call.
 */
export function useChromium(): { readonly browser: Browser } {
  let browser: Browser | undefined;
  beforeAll(async () => { browser = await launch(); }, 60_000);
  afterAll(async () => { await browser?.close(); });
  return { get browser() { return browser as Browser; } };
}

/** A loopback HTTP server on a free port, and its URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

export const close = (server: Server) => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });

export type PageServer = Awaited<ReturnType<typeof startPageServer>>;
/** What the page's `tokenOrError()` answers, and the events its client saw (HANDLES below). */
export type TabResult = { token?: string; error?: string; reason?: string; at: number };
export type TabEvent = { type: string; reason?: string; at: number };
/** The page's handles, as the page functions of the helpers below see them. */
type ClientWindow = { ready?: boolean; rotor: { setSession(pair: unknown): Promise<void> }; makeClient(options?: Record<string, unknown>): boolean; events: TabEvent[] };

/**
 * The client tests' rig, for one describe block: the web app's page on its own origin, a Rotor that
 * allows that origin (made by `start`), and Chromium — started before the tests, closed after them.
 */
export function useClientPage(start: (pageUrl: string) => Promise<TestServer>) {
  let page: PageServer | undefined;
  let server: TestServer | undefined;
  const chromium = useChromium();
  beforeAll(async () => {
    page = await startPageServer();
    server = await start(page.url);
    page.rotorUrl = server.url;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await page?.close();
  });

  /** (Re)loads the page in `tab` and makes its client with `options`. */
  async function open(tab: Page, options: Record<string, unknown> = {}): Promise<void> {
    await tab.goto((page as PageServer).url);
    await tab.waitForFunction(() => (window as unknown as ClientWindow).ready === true);
    await tab.evaluate((o) => (window as unknown as ClientWindow).makeClient(o), options);
  }

  return {
    get browser() { return chromium.browser; },
    get server() { return server as TestServer; },
    get page() { return page as PageServer; },
    open,
    /** `n` tabs of the page in `context`, each with its client made with `options`; page errors are printed. */
    async tabs(context: BrowserContext, n: number, options: Record<string, unknown> = {}): Promise<Page[]> {
      const pages = await Promise.all(Array.from({ length: n }, () => context.newPage()));
      await Promise.all(pages.map(async (p) => {
        p.on('pageerror', (err) => console.error('[page error]', err.message));
        await open(p, options);
      }));
      return pages;
    },
    /** A fresh context (its own storage, locks and IndexedDB: a browser profile of its own) for `run`, closed after it. */
    async inContext<T>(run: (context: BrowserContext) => Promise<T>): Promise<T> {
      const context = await chromium.browser.newContext();
      try {
        return await run(context);
      } finally {
        await context.close();
      }
    },
    /** Sets the session in the first tab and waits until every other tab has heard of it. */
    async signIn(pages: Page[], pair: unknown): Promise<void> {
      await (pages[0] as Page).evaluate((p) => (window as unknown as ClientWindow).rotor.setSession(p), pair);
      for (const p of pages.slice(1)) await p.waitForFunction(() => (window as unknown as ClientWindow).events.some((e) => e.type === 'signed_in'));
    },
  };
}

/**
 * The web app's own origin: another loopback port than Rotor's. Its page imports the SDK from Rotor's
 * `/sdk/rotor-client.js` and offers the test a few handles (`makeClient`, `tokenOrError`, `events`).
 */
export async function startPageServer(): Promise<{ url: string; rotorUrl: string; apiUrl: string; close(): Promise<void> }> {
  const state = { rotorUrl: '', apiUrl: '' };
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/worker.js')) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(workerScript(state.rotorUrl, state.apiUrl));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(pageHtml(state.rotorUrl, state.apiUrl));
  });
  const url = await listen(server);
  return {
    url,
    get rotorUrl() { return state.rotorUrl; },
    set rotorUrl(value: string) { state.rotorUrl = value; },
    get apiUrl() { return state.apiUrl; },
    set apiUrl(value: string) { state.apiUrl = value; },
    close: () => close(server),
  };
}

/** The handles the page gives a test; events of this tab's client are kept in order. */
const HANDLES = `
  window.events = [];
  window.makeClient = (options = {}) => {
    window.rotor = createRotorClient({ baseUrl: window.API, ...options });
    window.rotor.onChange((event) => window.events.push({ ...event, at: Date.now() }));
    return true;
  };
  window.tokenOrError = async () => {
    try { return { token: await window.rotor.getAccessToken(), at: Date.now() }; }
    catch (e) { return { error: e && e.kind ? e.kind : String(e), reason: e && e.reason, at: Date.now() }; }
  };
`;

function pageHtml(rotorUrl: string, apiUrl: string): string {
  return `<!doctype html><meta charset="utf-8"><title>a web app</title>
<script type="module">
  import { createRotorClient } from ${JSON.stringify(`${rotorUrl}/sdk/rotor-client.js`)};
  window.API = ${JSON.stringify(apiUrl || rotorUrl)};
  ${HANDLES}
  window.ready = true;
</script>`;
}

/** A dedicated worker of the page's origin running the same client (memory storage: workers have no localStorage). */
function workerScript(rotorUrl: string, apiUrl: string): string {
  return `import { createRotorClient } from ${JSON.stringify(`${rotorUrl}/sdk/rotor-client.js`)};
const rotor = createRotorClient({ baseUrl: ${JSON.stringify(apiUrl || rotorUrl)} });
self.onmessage = async (event) => {
  const { id, op, arg } = event.data;
  try {
    if (op === 'setSession') await rotor.setSession(arg);
    const result = op === 'token' ? await rotor.getAccessToken() : null;
    self.postMessage({ id, result });
  } catch (e) { self.postMessage({ id, error: e.kind || String(e), reason: e.reason }); }
};
self.postMessage({ ready: true });`;
}

/**
 * An HTTP forwarder in front of Rotor that can hold one answer: `holdNext(path)` lets the next request
 * to that path through to Rotor (so it is committed there) but keeps its answer from the browser until
 * `release()`, as a slow network or a slow server would. Resolves when that request has been answered
 * by Rotor, with Rotor's answer.
 */
export async function startHoldingProxy(target: string): Promise<{
  url: string;
  holdNext(path: string): Promise<{ status: number; body: string }>;
  release(): void;
  close(): Promise<void>;
}> {
  let armed: { path: string; resolve: (answer: { status: number; body: string }) => void } | null = null;
  const held: (() => void)[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name)) headers[name] = value;
    }
    const hold = armed !== null && req.url === armed.path && req.method === 'POST' ? armed : null;
    if (hold) armed = null;
    let upstream: Response;
    try {
      upstream = await fetch(target + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    } catch {
      res.destroy();
      return;
    }
    const body = Buffer.from(await upstream.arrayBuffer());
    const send = () => {
      if (res.destroyed) return;
      const out: Record<string, string> = {};
      upstream.headers.forEach((value, name) => { if (!['content-length', 'connection', 'keep-alive', 'transfer-encoding', 'content-encoding'].includes(name)) out[name] = value; });
      res.writeHead(upstream.status, out).end(body);
    };
    if (hold) {
      held.push(send);
      hold.resolve({ status: upstream.status, body: body.toString('utf8') });
    } else send();
  });
  const url = await listen(server);
  return {
    url,
    holdNext: (path) => new Promise((resolve) => { armed = { path, resolve }; }),
    release: () => { for (const send of held.splice(0)) send(); },
    close: () => close(server),
  };
}
