import { query } from './api.js';
import { legend, timeChart, type Series } from './chart.js';
import { badge, h, replace, time, user } from './dom.js';
import type { Screen, Shell } from './shell.js';

interface Point {
  at: string; seconds: number; partial: boolean; reuse: number; requestsPerSecond: number; p99Ms: number | null;
  refreshPerSecond: { rotated: number; retry: number; reuse: number; refused: number };
}
interface Stats { now: string; stepSeconds: number; windowSeconds: number; instances: number; instance: string; points: Point[] }
interface SecurityEvent { id: string; at: string; event: string; appId: string | null; [field: string]: unknown }

const OUTCOMES = [
  { key: 'rotated', name: 'rotated', cls: 's-rotated' },
  { key: 'retry', name: 'grace retry', cls: 's-retry' },
  { key: 'reuse', name: 'reuse', cls: 's-reuse' },
  { key: 'refused', name: 'refused', cls: 's-refused' },
] as const;

const STATS_EVERY_MS = 10_000;
const EVENTS_EVERY_MS = 5_000;
const FEED_MAX = 200;

/**
 * `#/activity`: the last hour of the server's own counters (GET /admin/stats: every instance's
 * 10-second samples, kept in the store, and this instance's interval in progress), and the feed of
 * security events (GET /admin/events, polled with `since`).
 */
export function activityScreen(shell: Shell): Screen {
  const refreshChart = h('div', { class: 'panel chart', id: 'chart-refresh' });
  const reuseChart = h('div', { class: 'panel chart', id: 'chart-reuse' });
  const latencyChart = h('div', { class: 'panel chart', id: 'chart-latency' });
  const note = h('p', { class: 'muted small' });
  const feed = h('tbody');
  const el = h('div', null,
    h('div', { class: 'toolbar' }, h('h1', null, 'Activity'), h('span', { class: 'spacer' }), note),
    h('div', { class: 'charts' }, refreshChart, reuseChart, latencyChart),
    h('div', { class: 'panel' }, h('h2', null, 'Security events'),
      h('table', { id: 'events' },
        h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Event'), h('th', null, 'App'), h('th', null, 'Details'))),
        feed)));

  const timers: number[] = [];
  let names = new Map<string, string>();
  let since: string | null = null;
  const events: SecurityEvent[] = [];

  async function stats() {
    try {
      const data = await shell.api.request<Stats>('GET', '/admin/stats');
      draw(data);
    } catch (err) {
      shell.fail(err);
    }
  }

  function draw(data: Stats) {
    const to = Date.parse(data.now);
    const from = to - data.windowSeconds * 1000;
    const stepMs = data.stepSeconds * 1000;
    const pts = data.points.map((p) => ({ ...p, t: Date.parse(p.at) }));
    const last = pts.at(-1);
    const total = (p: Point) => OUTCOMES.reduce((sum, o) => sum + p.refreshPerSecond[o.key], 0);
    const series: Series[] = OUTCOMES.map((o) => ({ name: o.name, cls: o.cls, points: pts.map((p) => ({ t: p.t, v: p.refreshPerSecond[o.key] })) }));
    replace(refreshChart,
      h('h3', null, 'Refreshes per second'),
      h('div', { class: 'now', 'data-value': last ? total(last) : 0 }, last ? formatRate(total(last)) : '0', h('span', { class: 'muted small' }, ' /s now')),
      timeChart({ series, from, to, stepMs, unit: '/s' }), legend(OUTCOMES));
    const reuseTotal = pts.reduce((sum, p) => sum + p.reuse, 0);
    replace(reuseChart,
      h('h3', null, 'Reuse detections'),
      h('div', { class: 'now', 'data-value': reuseTotal }, String(reuseTotal), h('span', { class: 'muted small' }, ' in the last hour')),
      timeChart({ series: [{ name: 'sessions revoked for reuse', cls: 's-reuse', points: pts.map((p) => ({ t: p.t, v: p.reuse })) }], from, to, stepMs, bars: true }),
      legend([{ name: 'sessions revoked for reuse, per 10 s', cls: 's-reuse' }]));
    const latest = [...pts].reverse().find((p) => p.p99Ms !== null);
    replace(latencyChart,
      h('h3', null, 'p99 latency'),
      h('div', { class: 'now', 'data-value': latest?.p99Ms ?? '' }, latest?.p99Ms !== undefined && latest.p99Ms !== null ? `${latest.p99Ms}` : '—', h('span', { class: 'muted small' }, ' ms')),
      timeChart({ series: [{ name: 'p99', cls: 's-p99', points: pts.map((p) => ({ t: p.t, v: p.p99Ms })) }], from, to, stepMs, unit: 'ms' }),
      legend([{ name: 'p99 of the service\'s requests (not the console\'s)', cls: 's-p99' }]));
    replace(note, `${data.instances} instance${data.instances === 1 ? '' : 's'} reporting · 10-second samples · updated every 10 s`);
  }

  async function poll() {
    try {
      const page = await shell.api.request<{ events: SecurityEvent[]; next: string | null }>('GET', `/admin/events${query({ since, limit: since === null ? 100 : 500 })}`);
      since = page.next ?? since;
      if (page.events.length === 0 && events.length > 0) return;
      if (page.events.some((e) => e.appId !== null && !names.has(e.appId))) {
        shell.refreshApps();
        names = new Map((await shell.apps()).map((a) => [a.id, a.name]));
      }
      events.unshift(...page.events.reverse());
      events.splice(FEED_MAX);
      renderFeed();
    } catch (err) {
      shell.fail(err);
    }
  }

  function renderFeed() {
    if (events.length === 0) {
      replace(feed, h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No security events yet.')));
      return;
    }
    replace(feed, ...events.map((e) => {
      const details = Object.entries(e).filter(([k]) => !['id', 'at', 'event', 'appId'].includes(k));
      return h('tr', { 'data-event': e.event },
        h('td', null, time(e.at)),
        h('td', null, badge(e.event.replace(/_/g, ' '), e.event)),
        h('td', null, e.appId === null ? h('span', { class: 'muted' }, '—')
          : h('a', { href: `#/apps/${encodeURIComponent(e.appId)}` }, names.get(e.appId) ?? e.appId)),
        h('td', { class: 'small' }, ...details.flatMap(([k, v], i) => [i > 0 ? ' · ' : '', h('span', { class: 'muted' }, `${k} `), user(String(v))])));
    }));
  }

  void shell.apps().then((apps) => { names = new Map(apps.map((a) => [a.id, a.name])); }).catch(() => undefined).finally(() => {
    void poll();
  });
  void stats();
  timers.push(window.setInterval(() => void stats(), STATS_EVERY_MS));
  timers.push(window.setInterval(() => void poll(), EVENTS_EVERY_MS));
  return { el, dispose: () => { for (const t of timers) window.clearInterval(t); } };
}

function formatRate(v: number): string {
  return v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
}
