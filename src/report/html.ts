// report.html: one self-contained file (inline SVG and CSS, no script, no network) with
// the run's loss curves, accuracy by category, pair statistics and one search tree.
import type { TreeJson } from '../search/tree.js';

export interface CategoryScore {
  correct: number;
  total: number;
  accuracy: number;
}
export type CategoryTable = Record<string, CategoryScore>;

export interface ReportCurve {
  /** phase name, e.g. "warm-up SFT", "iteration 1 SimPO", "baseline SFT" */
  phase: string;
  points: Array<{ step: number; loss: number }>;
}

export interface ReportEvaluation {
  /** column label, e.g. "warm-up", "iTool it 1", "SFT baseline" */
  label: string;
  series: 'warmup' | 'itool' | 'baseline' | (string & {});
  categories: CategoryTable;
}

export interface ReportTable {
  title: string;
  note?: string;
  header: string[];
  rows: string[][];
}

export interface ReportIteration {
  iteration: number;
  selected: number;
  nodes: number;
  pairs: number;
  chosenValues: number[];
  rejectedValues: number[];
  seconds?: number;
}

export interface ReportTree {
  sampleId: string;
  prompt?: string;
  root: TreeJson;
  pairs: Array<{ nodeId: number; chosenNode: number; rejectedNode: number }>;
}

export interface ReportData {
  title: string;
  subtitle?: string;
  seconds?: number;
  curves: ReportCurve[];
  evaluations: ReportEvaluation[];
  iterations: ReportIteration[];
  tree?: ReportTree | null;
  notes?: string[];
  /** further plain tables (title, header row, body rows), shown after the accuracy table */
  tables?: ReportTable[];
  config?: Record<string, unknown>;
}

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function fmt(x: number, d = 3): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) return x.toExponential(2);
  return Number(x.toFixed(d)).toString();
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Line chart: x = step, y = loss, one polyline per series, legend on the right. */
export function lineChart(series: Array<{ name: string; points: Array<{ x: number; y: number }> }>, opts: { width?: number; height?: number; xLabel?: string; yLabel?: string } = {}): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 300;
  const L = 56, R = 190, T = 14, B = 40;
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0) return `<svg width="${W}" height="60" xmlns="http://www.w3.org/2000/svg"><text x="10" y="30" font-size="13">no data</text></svg>`;
  let x0 = Math.min(...pts.map((p) => p.x)), x1 = Math.max(...pts.map((p) => p.x));
  let y0 = Math.min(...pts.map((p) => p.y)), y1 = Math.max(...pts.map((p) => p.y));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">`];
  for (const t of niceTicks(y0, y1)) parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e7eb"/><text x="${L - 6}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  for (const t of niceTicks(x0, x1, 6)) parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${H - B}" y2="${H - B + 4}" stroke="#111"/><text x="${sx(t)}" y="${H - B + 16}" text-anchor="middle">${fmt(t)}</text>`);
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#111"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#111"/>`);
  if (opts.xLabel) parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(opts.xLabel)}</text>`);
  if (opts.yLabel) parts.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${escapeHtml(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const ps = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (ps.length === 1) parts.push(`<circle cx="${sx(ps[0].x)}" cy="${sy(ps[0].y)}" r="3" fill="${color}"/>`);
    else if (ps.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${ps.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`);
    const ly = T + 8 + i * 18;
    parts.push(`<rect x="${W - R + 12}" y="${ly - 6}" width="14" height="3" fill="${color}"/><text x="${W - R + 32}" y="${ly}">${escapeHtml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Grouped bars: one group per category, one bar per column, values in [0, 1]. */
export function groupedBars(categories: string[], columns: Array<{ name: string; values: number[] }>, opts: { width?: number; height?: number } = {}): string {
  const H = opts.height ?? 300;
  const L = 44, T = 14, B = 56, R = 180;
  const groupW = Math.max(60, columns.length * 16 + 20);
  const W = opts.width ?? Math.max(520, L + R + categories.length * groupW);
  const gw = (W - L - R) / Math.max(1, categories.length);
  const bw = Math.max(4, (gw - 16) / Math.max(1, columns.length));
  const sy = (v: number) => T + (1 - v) * (H - T - B);
  const parts: string[] = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">`];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e7eb"/><text x="${L - 6}" y="${sy(t) + 4}" text-anchor="end">${Math.round(t * 100)}%</text>`);
  categories.forEach((c, ci) => {
    const gx = L + ci * gw + 8;
    columns.forEach((col, k) => {
      const v = col.values[ci];
      if (!Number.isFinite(v)) return;
      const x = gx + k * bw;
      parts.push(`<rect x="${x.toFixed(1)}" y="${sy(v).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(sy(0) - sy(v)).toFixed(1)}" fill="${PALETTE[k % PALETTE.length]}"><title>${escapeHtml(`${col.name} · ${c}: ${(v * 100).toFixed(1)}%`)}</title></rect>`);
    });
    parts.push(`<text x="${(gx + gw / 2 - 8).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${escapeHtml(c)}</text>`);
  });
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(0)}" y2="${sy(0)}" stroke="#111"/>`);
  columns.forEach((col, k) => {
    const ly = T + 8 + k * 18;
    parts.push(`<rect x="${W - R + 12}" y="${ly - 8}" width="12" height="10" fill="${PALETTE[k % PALETTE.length]}"/><text x="${W - R + 30}" y="${ly}">${escapeHtml(col.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Histogram of chosen and rejected values over [-1, 1] (one row of small multiples per iteration). */
export function valueHistogram(chosen: number[], rejected: number[], opts: { width?: number; height?: number; bins?: number } = {}): string {
  const W = opts.width ?? 360, H = opts.height ?? 160, nb = opts.bins ?? 20;
  const L = 30, R = 10, T = 10, B = 28;
  const count = (vs: number[]) => {
    const h = new Array<number>(nb).fill(0);
    for (const v of vs) if (Number.isFinite(v)) h[Math.min(nb - 1, Math.max(0, Math.floor(((v + 1) / 2) * nb)))]++;
    return h;
  };
  const hc = count(chosen), hr = count(rejected);
  const m = Math.max(1, ...hc, ...hr);
  const bw = (W - L - R) / nb;
  const sy = (v: number) => T + (1 - v / m) * (H - T - B);
  const parts: string[] = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="10">`];
  for (let i = 0; i < nb; i++) {
    const x = L + i * bw;
    if (hr[i]) parts.push(`<rect x="${x.toFixed(1)}" y="${sy(hr[i]).toFixed(1)}" width="${(bw / 2).toFixed(1)}" height="${(sy(0) - sy(hr[i])).toFixed(1)}" fill="#dc2626"/>`);
    if (hc[i]) parts.push(`<rect x="${(x + bw / 2).toFixed(1)}" y="${sy(hc[i]).toFixed(1)}" width="${(bw / 2).toFixed(1)}" height="${(sy(0) - sy(hc[i])).toFixed(1)}" fill="#16a34a"/>`);
  }
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${sy(0)}" y2="${sy(0)}" stroke="#111"/>`);
  for (const t of [-1, -0.5, 0, 0.5, 1]) parts.push(`<text x="${L + ((t + 1) / 2) * (W - L - R)}" y="${H - B + 14}" text-anchor="middle">${t}</text>`);
  parts.push(`<text x="${L - 4}" y="${T + 8}" text-anchor="end">${m}</text><text x="${W - R}" y="${H - 4}" text-anchor="end">value</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function clip(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > n ? one.slice(0, n - 1) + '…' : one;
}

/** Tree drawing: layered layout (depth = row), leaves spread left to right. */
export function treeSvg(tree: ReportTree, opts: { maxWidth?: number } = {}): string {
  const chosen = new Set(tree.pairs.map((p) => p.chosenNode));
  const rejected = new Set(tree.pairs.map((p) => p.rejectedNode));
  const boxW = 150, boxH = 46, gapX = 12, gapY = 46;
  const pos = new Map<number, { x: number; y: number }>();
  let nextX = 0;
  let maxDepth = 0;
  const place = (n: TreeJson): number => {
    maxDepth = Math.max(maxDepth, n.depth);
    let x: number;
    if (n.children.length === 0) {
      x = nextX;
      nextX += boxW + gapX;
    } else {
      const xs = n.children.map(place);
      x = (xs[0] + xs[xs.length - 1]) / 2;
    }
    pos.set(n.id, { x, y: n.depth * (boxH + gapY) });
    return x;
  };
  place(tree.root);
  const W = Math.max(nextX, boxW) + 20;
  const H = (maxDepth + 1) * (boxH + gapY) + 10;
  const parts: string[] = [`<svg width="${Math.min(W, opts.maxWidth ?? W)}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="monospace" font-size="10">`];
  const edges = (n: TreeJson) => {
    const p = pos.get(n.id)!;
    for (const c of n.children) {
      const q = pos.get(c.id)!;
      const color = chosen.has(c.id) ? '#16a34a' : rejected.has(c.id) ? '#dc2626' : '#9ca3af';
      const w = chosen.has(c.id) || rejected.has(c.id) ? 2.5 : 1;
      parts.push(`<line x1="${p.x + 10 + boxW / 2}" y1="${p.y + 5 + boxH}" x2="${q.x + 10 + boxW / 2}" y2="${q.y + 5}" stroke="${color}" stroke-width="${w}"/>`);
      edges(c);
    }
  };
  edges(tree.root);
  const boxes = (n: TreeJson) => {
    const p = pos.get(n.id)!;
    const fill = n.id === 0 ? '#e0e7ff' : chosen.has(n.id) ? '#dcfce7' : rejected.has(n.id) ? '#fee2e2' : '#f9fafb';
    const stroke = chosen.has(n.id) ? '#16a34a' : rejected.has(n.id) ? '#dc2626' : '#6b7280';
    const label = n.id === 0 ? '(prompt)' : `«${clip(n.text.replace(/\n/g, '⏎'), 22)}»`;
    const mark = chosen.has(n.id) ? ' ✓ chosen' : rejected.has(n.id) ? ' ✗ rejected' : n.terminal ? ' ■ end' : '';
    parts.push(
      `<g transform="translate(${(p.x + 10).toFixed(1)},${p.y + 5})"><rect width="${boxW}" height="${boxH}" rx="5" fill="${fill}" stroke="${stroke}"/>` +
        `<text x="6" y="14">${escapeHtml(label)}</text>` +
        `<text x="6" y="27">v=${fmt(n.value, 2)} N=${n.visits} p=${fmt(n.prior, 2)}</text>` +
        `<text x="6" y="40" fill="${stroke}">#${n.id}${escapeHtml(mark)}</text><title>${escapeHtml(n.text)}</title></g>`,
    );
    n.children.forEach(boxes);
  };
  boxes(tree.root);
  parts.push('</svg>');
  return parts.join('');
}

function categoryTable(evals: ReportEvaluation[]): string {
  const cats = categoryNames(evals);
  const head = `<tr><th>category</th>${evals.map((e) => `<th>${escapeHtml(e.label)}</th>`).join('')}</tr>`;
  const rows = cats.map((c) => {
    const cells = evals.map((e) => {
      const s = e.categories[c];
      return s ? `<td>${(s.accuracy * 100).toFixed(1)}% <span class="n">(${s.correct}/${s.total})</span></td>` : '<td>–</td>';
    });
    return `<tr><td>${escapeHtml(c)}</td>${cells.join('')}</tr>`;
  });
  const overall = evals.map((e) => {
    const v = Object.values(e.categories);
    const correct = v.reduce((a, s) => a + s.correct, 0), total = v.reduce((a, s) => a + s.total, 0);
    return `<td><b>${total ? ((correct / total) * 100).toFixed(1) : '–'}%</b> <span class="n">(${correct}/${total})</span></td>`;
  });
  return `<table>${head}${rows.join('')}<tr><td><b>all</b></td>${overall.join('')}</tr></table>`;
}

export function categoryNames(evals: ReportEvaluation[]): string[] {
  const order = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'reply', 'multi_turn'];
  const set = new Set<string>();
  for (const e of evals) for (const c of Object.keys(e.categories)) set.add(c);
  return [...set].sort((a, b) => {
    const ia = order.indexOf(a), ib = order.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
}

/** The whole report as one HTML string. */
export function renderReport(d: ReportData): string {
  const cats = categoryNames(d.evaluations);
  const curves = d.curves.map((c) => ({ name: c.phase, points: c.points.map((p) => ({ x: p.step, y: p.loss })) }));
  const sections: string[] = [];
  sections.push(`<h1>${escapeHtml(d.title)}</h1>`);
  if (d.subtitle) sections.push(`<p class="sub">${escapeHtml(d.subtitle)}</p>`);
  // which preset ran (src/pipeline/config.ts PRESETS); a config without one ran the defaults, the itool preset
  if (d.config) sections.push(`<p class="sub">preset: ${escapeHtml(typeof d.config.preset === 'string' ? d.config.preset : 'itool (the default)')}</p>`);
  if (d.seconds !== undefined) sections.push(`<p class="sub">wall time ${fmt(d.seconds, 1)} s</p>`);
  sections.push('<h2>Accuracy by category (BFCL AST rules)</h2>');
  sections.push(categoryTable(d.evaluations));
  sections.push(groupedBars(cats, d.evaluations.map((e) => ({ name: e.label, values: cats.map((c) => e.categories[c]?.accuracy ?? NaN) }))));
  for (const t of d.tables ?? []) {
    sections.push(`<h2>${escapeHtml(t.title)}</h2>`);
    if (t.note) sections.push(`<p class="sub">${escapeHtml(t.note)}</p>`);
    sections.push(`<table><tr>${t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>${t.rows.map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`).join('')}</table>`);
  }
  sections.push('<h2>Loss curves</h2>');
  // one chart per phase: SFT and preference losses live on different scales
  for (const c of curves)
    sections.push(
      `<h3>${escapeHtml(c.name)}</h3>` + (c.points.length ? lineChart([c], { xLabel: 'optimizer step', yLabel: 'loss', height: 220 }) : '<p class="sub">no optimizer steps in this phase (no pairs: the policy was left unchanged)</p>'),
    );
  if (d.iterations.length) {
    sections.push('<h2>Search and pairs per iteration</h2>');
    sections.push(
      `<table><tr><th>iteration</th><th>selected samples</th><th>tree nodes</th><th>pairs</th><th>mean chosen value</th><th>mean rejected value</th>${d.iterations.some((i) => i.seconds !== undefined) ? '<th>seconds</th>' : ''}</tr>` +
        d.iterations
          .map((it) => {
            const mc = it.chosenValues.length ? it.chosenValues.reduce((a, b) => a + b, 0) / it.chosenValues.length : NaN;
            const mr = it.rejectedValues.length ? it.rejectedValues.reduce((a, b) => a + b, 0) / it.rejectedValues.length : NaN;
            return `<tr><td>${it.iteration}</td><td>${it.selected}</td><td>${it.nodes}</td><td>${it.pairs}</td><td>${Number.isFinite(mc) ? fmt(mc) : '–'}</td><td>${Number.isFinite(mr) ? fmt(mr) : '–'}</td>${it.seconds !== undefined ? `<td>${fmt(it.seconds, 1)}</td>` : ''}</tr>`;
          })
          .join('') +
        '</table>',
    );
    sections.push('<p class="sub">Value distributions of chosen (green) and rejected (red) steps:</p><div class="row">');
    for (const it of d.iterations) sections.push(`<div><h3>iteration ${it.iteration}: ${it.pairs} pairs</h3>${valueHistogram(it.chosenValues, it.rejectedValues)}</div>`);
    sections.push('</div>');
  }
  if (d.tree) {
    sections.push(`<h2>One search tree: sample ${escapeHtml(d.tree.sampleId)}</h2>`);
    sections.push('<p class="sub">Each box is a step (v = mean back-propagated value, N = visits, p = prior). Green: chosen step of a pair; red: rejected step over the same prefix.</p>');
    if (d.tree.prompt) sections.push(`<details><summary>prompt</summary><pre>${escapeHtml(d.tree.prompt)}</pre></details>`);
    sections.push(`<div class="scroll">${treeSvg(d.tree)}</div>`);
  }
  if (d.notes?.length) sections.push('<h2>Notes</h2><ul>' + d.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('') + '</ul>');
  if (d.config) sections.push(`<h2>Configuration</h2><pre>${escapeHtml(JSON.stringify(d.config, null, 2))}</pre>`);
  const css =
    'body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1200px}h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}' +
    'table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}' +
    '.n{color:#6b7280;font-size:85%}.sub{color:#4b5563}.row{display:flex;flex-wrap:wrap;gap:16px}.scroll{overflow-x:auto}pre{background:#f3f4f6;padding:8px;white-space:pre-wrap}';
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(d.title)}</title><style>${css}</style></head><body>${sections.join('\n')}</body></html>\n`;
}
