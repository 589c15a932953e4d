/**
 * The console's page and style sheet, built into the package as code (no file to find at run time,
 * nothing fetched from anywhere else). The page holds no script and no style of its own: one module
 * script and one style sheet, both from `/console/…` (CSP: script-src 'self', style-src 'self').
 *
 * Paths are relative (`console/…`, resolved against `/console`), so the console also works behind a
 * proxy that mounts Rotor under a path of its own.
 */
export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Rotor console</title>
<link rel="icon" href="console/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="console/console.css">
<script type="module" src="console/ui/main.js"></script>
</head>
<body>
<noscript><p class="noscript">The Rotor console needs JavaScript (its own script only; nothing from elsewhere).</p></noscript>
<div id="root"></div>
</body>
</html>
`;

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="13" fill="none" stroke="#3b5bdb" stroke-width="4"/><path d="M16 3a13 13 0 0 1 13 13h-6" fill="none" stroke="#12b886" stroke-width="4"/></svg>`;

export const CONSOLE_CSS = `
:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2330; --muted: #667085; --line: #e3e6eb; --accent: #3b5bdb;
  --ok: #12b886; --warn: #f08c00; --bad: #e03131; --retry: #7048e8; --soft: #eef2ff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
bdi, .u { unicode-bidi: isolate; overflow-wrap: break-word; word-break: break-word; }
.t > span, td.ip { white-space: nowrap; }
.ctl { color: var(--bad); background: #fff5f5; border-radius: 3px; padding: 0 2px; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 0 0 8px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
.noscript { padding: 24px; }

header.top { display: flex; align-items: center; gap: 22px; padding: 0 24px; height: 52px; background: #1d2330; color: #fff; }
header.top .brand { font-weight: 700; letter-spacing: .02em; display: flex; align-items: center; gap: 8px; }
header.top .brand .dot { width: 12px; height: 12px; border-radius: 50%; border: 3px solid #91a7ff; border-top-color: #63e6be; }
header.top nav { display: flex; gap: 4px; }
header.top nav a { color: #c5cbd6; padding: 6px 12px; border-radius: 6px; }
header.top nav a.on, header.top nav a:hover { color: #fff; background: #2d3547; text-decoration: none; }
header.top .right { margin-left: auto; display: flex; gap: 12px; align-items: center; color: #c5cbd6; font-size: 13px; }
header.top button { background: transparent; color: #fff; border-color: #4a5468; }

main { padding: 22px 24px 40px; max-width: 1400px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin-bottom: 16px; }
.row { display: flex; gap: 16px; align-items: flex-start; }
.row > .grow { flex: 1; min-width: 0; }
.side { width: 340px; flex: none; }
.muted { color: var(--muted); }
.small { font-size: 12.5px; }
.spacer { flex: 1; }
.toolbar { display: flex; gap: 8px; align-items: center; margin-bottom: 12px; flex-wrap: wrap; }
.crumbs { color: var(--muted); margin-bottom: 6px; }

table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; padding: 6px 8px; border-bottom: 1px solid var(--line); }
td { padding: 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr.click { cursor: pointer; }
tr.click:hover td, tr.sel td { background: var(--soft); }
td.actions { text-align: right; white-space: nowrap; }
td .sub { color: var(--muted); font-size: 12px; }
.ua { max-width: 340px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
details.claims { margin-top: 4px; font-size: 12px; }
details.claims summary { color: var(--muted); cursor: pointer; }
pre.json { background: #f8f9fb; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 6px 0 0; max-height: 180px; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; }

button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; }
button:hover { border-color: #b8bfcc; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { color: var(--bad); border-color: #f1b5b5; }
button.danger.armed { background: var(--bad); border-color: var(--bad); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
input[type=text], input[type=password], input[type=search] { font: inherit; padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; min-width: 0; }
input:focus, button:focus-visible { outline: 2px solid #91a7ff; outline-offset: 1px; }

.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #eef0f3; color: #4a5468; white-space: nowrap; }
.badge.live, .badge.active, .badge.rotated { background: #e6fcf5; color: #087f5b; }
.badge.retiring, .badge.retry, .badge.login_failed { background: #fff4e6; color: #d9480f; }
.badge.revoked, .badge.reuse_detected, .badge.disabled, .badge.refused, .badge.key_revoked, .badge.subject_deleted, .badge.subject_disabled { background: #fff5f5; color: #c92a2a; }
.badge.expired { background: #f1f3f5; color: #868e96; }
.badge.key_rotated, .badge.session_revoked, .badge.native { background: #edf2ff; color: #364fc7; }

.tabs { display: flex; gap: 2px; border-bottom: 1px solid var(--line); margin: 14px 0 16px; }
.tabs a { padding: 8px 14px; color: var(--muted); border-bottom: 2px solid transparent; margin-bottom: -1px; }
.tabs a.on { color: var(--ink); border-bottom-color: var(--accent); font-weight: 600; }
.tabs a:hover { text-decoration: none; color: var(--ink); }

.status { position: fixed; right: 20px; bottom: 20px; max-width: 460px; padding: 10px 14px; border-radius: 8px; background: #1d2330; color: #fff; box-shadow: 0 6px 20px rgba(0,0,0,.18); }
.status.error { background: var(--bad); }
.status.hidden { display: none; }
.empty { color: var(--muted); padding: 14px 0; }

.signin { max-width: 420px; margin: 12vh auto; }
.signin form { display: grid; gap: 10px; }
.signin .error { color: var(--bad); min-height: 20px; }
.signin .note { color: var(--muted); font-size: 12.5px; }

.charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 16px; }
.chart svg { width: 100%; height: 170px; display: block; }
.chart .legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin-top: 6px; }
.chart .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.chart .now { font-size: 22px; font-weight: 650; }
.grid-line { stroke: #edf0f3; stroke-width: 1; }
.axis-label { fill: #98a2b3; font-size: 10px; }
polyline.line { fill: none; stroke-width: 1.6; }
.s-rotated { stroke: var(--ok); fill: var(--ok); background: var(--ok); }
.s-retry { stroke: var(--retry); fill: var(--retry); background: var(--retry); }
.s-reuse { stroke: var(--bad); fill: var(--bad); background: var(--bad); }
.s-refused { stroke: var(--warn); fill: var(--warn); background: var(--warn); }
.s-p99 { stroke: var(--accent); fill: var(--accent); background: var(--accent); }
rect.bar { stroke: none; }
@media (max-width: 1100px) { .charts { grid-template-columns: 1fr; } .row { flex-direction: column; } .side { width: 100%; } }
`;
