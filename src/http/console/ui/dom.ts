/**
 * The console builds its DOM from nodes, never from markup: every text, however hostile (an app's
 * description, a subject id, claims, a user agent), becomes a Text node, and attributes are set one by
 * one. There is no innerHTML anywhere, and the page's CSP (Trusted Types) would make one throw.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Attributes a value may be given for (anything else is a bug here, refused loudly). */
const SAFE_ATTRIBUTE = /^(class|id|type|title|name|placeholder|autocomplete|value|disabled|colspan|for|role|aria-[a-z]+|data-[a-z-]+|spellcheck|href|target|rel|min|max|tabindex)$/;

function apply(el: Element, attrs: Attrs | undefined): void {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
      continue;
    }
    if (!SAFE_ATTRIBUTE.test(name)) throw new Error(`attribute ${name} is not allowed`);
    const text = value === true ? '' : String(value);
    // Links go to this origin only: a fragment route or a relative path the console built itself.
    if (name === 'href' && !/^(#\/|[a-z0-9])/.test(text)) throw new Error('links must be relative');
    el.setAttribute(name, text);
  }
}

function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs ?? undefined);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Record<string, string | number>, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (!/^(class|viewBox|x|y|x1|x2|y1|y2|width|height|points|d|rx|text-anchor|preserveAspectRatio|dominant-baseline)$/.test(name)) throw new Error(`svg attribute ${name} is not allowed`);
    el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** Invisible formatting characters (bidi overrides and isolates, zero-width joiners, …): Unicode category Cf. */
const INVISIBLE = /\p{Cf}/gu;

/**
 * Text someone else wrote (subject ids, user agents, descriptions, claims): isolated in a <bdi>, so it
 * cannot reorder the page around it, and with every invisible formatting character shown as its code
 * point, so `mallory\u202Egnp.exe` reads as what it is rather than as "malloryexe.png".
 */
export function user(text: string | null | undefined, fallback = '—'): HTMLElement {
  if (text === null || text === undefined || text === '') return h('span', { class: 'muted' }, fallback);
  const el = h('bdi', { class: 'u' });
  let at = 0;
  for (const match of text.matchAll(INVISIBLE)) {
    if (match.index > at) el.appendChild(document.createTextNode(text.slice(at, match.index)));
    const code = `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    el.appendChild(h('span', { class: 'ctl', title: `an invisible formatting character (${code}) is here` }, `⟨${code}⟩`));
    at = match.index + match[0].length;
  }
  if (at < text.length) el.appendChild(document.createTextNode(text.slice(at)));
  return el;
}

/** JSON someone else wrote, pretty-printed, with its invisible characters shown (see `user`). */
export const json = (value: unknown): HTMLElement => h('pre', { class: 'json' }, user(JSON.stringify(value, null, 2)));

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** `2026-12-01 10:04:05` in the browser's time zone; the exact instant (UTC) in the title. */
export function time(iso: string | null | undefined): HTMLElement {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', { class: 'muted' }, '—');
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  // Date and time may go on two lines in a narrow column, each never split.
  return h('span', { class: 't', title: `${d.toISOString()} (${ago(d.getTime())})` }, h('span', null, day), ' ', h('span', null, clock));
}

export function ago(ms: number): string {
  const s = Math.round((Date.now() - ms) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A policy duration in seconds, readably. */
export function duration(seconds: unknown): string {
  if (seconds === null || seconds === undefined) return 'off';
  if (typeof seconds !== 'number') return String(seconds);
  if (seconds === 0) return '0';
  const units: [number, string][] = [[86400, 'd'], [3600, 'h'], [60, 'min'], [1, 's']];
  for (const [size, unit] of units) if (seconds % size === 0) return `${seconds / size} ${unit}`;
  return `${seconds} s`;
}

export const badge = (text: string, kind = text): HTMLElement => h('span', { class: `badge ${kind.replace(/[^a-z_]/g, '')}` }, text);

/** A button that asks for a second click before it acts (no blocking dialog). */
export function confirmButton(label: string, confirmLabel: string, action: () => Promise<void>, extraClass = ''): HTMLButtonElement {
  let armed: number | null = null;
  const button = h('button', { type: 'button', class: `danger ${extraClass}`.trim() }, label);
  button.addEventListener('click', async () => {
    if (armed === null) {
      button.classList.add('armed');
      button.textContent = confirmLabel;
      armed = window.setTimeout(() => {
        armed = null;
        button.classList.remove('armed');
        button.textContent = label;
      }, 5000);
      return;
    }
    window.clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.classList.remove('armed');
      button.textContent = label;
    }
  });
  return button;
}
