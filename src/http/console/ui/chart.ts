import { h, s } from './dom.js';

export interface Series {
  name: string;
  /** CSS class of its colour (`s-rotated`, …). */
  cls: string;
  points: { t: number; v: number | null }[];
}

const W = 420;
const H = 170;
const LEFT = 38;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 20;

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

const label = (v: number): string => (v >= 1000 ? `${Math.round(v / 100) / 10}k` : v >= 10 ? String(Math.round(v)) : String(Math.round(v * 100) / 100));

/**
 * A time chart of the last hour as SVG nodes (no library, no markup strings): lines for rates and
 * latencies, or bars for counts. A gap in the samples (no instance reported) is a gap in the line.
 */
export function timeChart(options: { series: Series[]; from: number; to: number; stepMs: number; bars?: boolean; unit?: string }): SVGSVGElement {
  const { from, to } = options;
  const span = Math.max(1, to - from);
  const values = options.series.flatMap((x) => x.points.map((p) => p.v ?? 0));
  const max = niceMax(Math.max(0, ...values));
  const x = (t: number) => LEFT + ((t - from) / span) * (W - LEFT - RIGHT);
  const y = (v: number) => TOP + (1 - v / max) * (H - TOP - BOTTOM);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'plot' });
  for (const fraction of [0, 0.5, 1]) {
    const v = max * fraction;
    svg.appendChild(s('line', { class: 'grid-line', x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }));
    svg.appendChild(s('text', { class: 'axis-label', x: LEFT - 4, y: y(v) + 3, 'text-anchor': 'end' }, `${label(v)}${fraction === 1 && options.unit ? ` ${options.unit}` : ''}`));
  }
  for (const minutes of [60, 45, 30, 15, 0]) {
    const t = to - minutes * 60_000;
    svg.appendChild(s('text', { class: 'axis-label', x: x(t), y: H - 5, 'text-anchor': minutes === 60 ? 'start' : minutes === 0 ? 'end' : 'middle' }, minutes === 0 ? 'now' : `−${minutes} min`));
  }
  for (const series of options.series) {
    if (options.bars) {
      const width = Math.max(1.5, ((options.stepMs / span) * (W - LEFT - RIGHT)) * 0.8);
      for (const p of series.points) {
        if (p.v === null || p.v <= 0) continue;
        svg.appendChild(s('rect', { class: `bar ${series.cls}`, x: x(p.t) - width, y: y(p.v), width, height: Math.max(1, y(0) - y(p.v)) }));
      }
      continue;
    }
    let run: string[] = [];
    let last: number | null = null;
    const flush = () => {
      if (run.length === 1) run.push(run[0]!);
      if (run.length > 1) svg.appendChild(s('polyline', { class: `line ${series.cls}`, points: run.join(' ') }));
      run = [];
    };
    for (const p of series.points) {
      if (p.v === null || (last !== null && p.t - last > options.stepMs * 1.6)) flush();
      if (p.v !== null) run.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      last = p.t;
    }
    flush();
  }
  return svg;
}

export function legend(series: readonly { name: string; cls: string }[]): HTMLElement {
  return h('div', { class: 'legend' }, ...series.map((x) => h('span', null, h('i', { class: x.cls }), x.name)));
}
