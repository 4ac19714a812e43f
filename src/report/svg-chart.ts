// Line charts as inline SVG text (no libraries): several series overlaid, a legend, axes with tick
// labels and titles, optional marker points (eval results, with standard-error whiskers). Non-finite values are skipped, constant
// or single-point data get a padded range, and long series are downsampled (largest-triangle-three-
// buckets) to at most `maxPoints` points each.

export interface Series {
  name: string;
  color: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /**
   * EMA smoothing weight in [0, 1) (TensorBoard-style, debiased); > 0 draws the smoothed curve as the
   * series' polyline and the raw values as a faint path behind it. Default 0: raw values only.
   */
  smooth?: number;
  /** SVG stroke-dasharray of the line (and its legend entry), so overlapping runs stay apart; default solid. */
  dash?: string;
}

export interface MarkerSeries {
  /** Legend label of the marker kind (e.g. 'eval (test)'); markers are coloured like their run. */
  label: string;
  shape: MarkerShape;
  color: string;
  runName: string;
  /** `err`: a standard error, drawn as a whisker from y - err to y + err. */
  points: Array<{ x: number; y: number; err?: number; tip?: string }>;
  /** Joined by a thin line in this dash pattern ('' solid): a run's evaluations where it has no curve of its own. */
  connect?: string;
}

export type MarkerShape = 'circle' | 'square' | 'triangle' | 'diamond';

export interface ChartOptions {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  markers?: MarkerSeries[];
  /** Fixed y range (e.g. [0, 1] for accuracies); widened if data falls outside. */
  yDomain?: [number, number];
  width?: number;
  height?: number;
  maxPoints?: number;
  /** A scatter: a margin of 4% around the points on both axes, so none sits on the frame. */
  pad?: boolean;
  /** x counts something whole (steps, pairs seen): its ticks are integers, never 2.5 pairs. */
  integerX?: boolean;
}

// Ten well-separated hues, then ten darker ones, so a sweep of up to twenty runs has no two alike.
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#393b79', '#843c39', '#637939', '#8c6d31', '#7b4173', '#31a354', '#e6550d', '#3182bd', '#636363', '#9c9ede'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Finite (x, y) pairs of a series, sorted by x (stable). */
export function finitePoints(x: ArrayLike<number>, y: ArrayLike<number>): { x: number[]; y: number[] } {
  const n = Math.min(x.length, y.length);
  const idx: number[] = [];
  let sorted = true;
  for (let i = 0; i < n; i++) {
    if (Number.isFinite(x[i]) && Number.isFinite(y[i])) {
      if (idx.length && x[i] < x[idx[idx.length - 1]]) sorted = false;
      idx.push(i);
    }
  }
  if (!sorted) idx.sort((a, b) => x[a] - x[b] || a - b);
  return { x: idx.map((i) => x[i]), y: idx.map((i) => y[i]) };
}

/** Debiased exponential moving average of y (weight w on the past): s_t = w s_{t-1} + (1-w) y_t, s_t / (1 - w^t). */
export function ema(y: ArrayLike<number>, w: number): number[] {
  const out: number[] = [];
  let s = 0, wt = 1;
  for (let i = 0; i < y.length; i++) {
    s = w * s + (1 - w) * y[i];
    wt *= w;
    out.push(wt < 1 ? s / (1 - wt) : y[i]);
  }
  return out;
}

/**
 * Largest-triangle-three-buckets downsampling of sorted finite points to at most `maxPoints`
 * (first and last kept; one point per bucket, chosen to keep the visual shape, spikes included).
 */
export function downsample(x: ArrayLike<number>, y: ArrayLike<number>, maxPoints: number): { x: number[]; y: number[] } {
  const n = x.length;
  if (maxPoints < 3 || n <= maxPoints) return { x: Array.from(x), y: Array.from(y) };
  const ox = [x[0]], oy = [y[0]];
  const every = (n - 2) / (maxPoints - 2);
  let a = 0;
  for (let i = 0; i < maxPoints - 2; i++) {
    // Average of the next bucket (the third triangle corner).
    const nStart = Math.floor((i + 1) * every) + 1;
    const nEnd = Math.min(Math.floor((i + 2) * every) + 1, n);
    let avgX = 0, avgY = 0;
    for (let j = nStart; j < nEnd; j++) { avgX += x[j]; avgY += y[j]; }
    const cnt = Math.max(nEnd - nStart, 1);
    if (nEnd > nStart) { avgX /= cnt; avgY /= cnt; } else { avgX = x[n - 1]; avgY = y[n - 1]; }
    // Point of this bucket forming the largest triangle with the previous pick and the average.
    const start = Math.floor(i * every) + 1;
    const end = Math.floor((i + 1) * every) + 1;
    let best = start, bestArea = -1;
    for (let j = start; j < end; j++) {
      const area = Math.abs((x[a] - avgX) * (y[j] - y[a]) - (x[a] - x[j]) * (avgY - y[a]));
      if (area > bestArea) { bestArea = area; best = j; }
    }
    ox.push(x[best]); oy.push(y[best]);
    a = best;
  }
  ox.push(x[n - 1]); oy.push(y[n - 1]);
  return { x: ox, y: oy };
}

export interface Ticks { min: number; max: number; step: number; ticks: number[] }

/**
 * "Nice" axis range and ticks (steps 1, 2, 5 x 10^k) covering [lo, hi]; a zero-width range is padded.
 * `minStep`: the smallest step (1 for a count: whole ticks only).
 */
export function niceTicks(lo: number, hi: number, target = 5, minStep = 0): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad; hi += pad;
  }
  const raw = (hi - lo) / Math.max(target, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = Math.max(minStep, (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag);
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  const count = Math.round((max - min) / step);
  for (let i = 0; i <= count; i++) ticks.push(roundTo(min + i * step, step));
  return { min, max: max > min ? max : min + step, step, ticks };
}

function roundTo(v: number, step: number): number {
  const d = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  const r = Number(v.toFixed(Math.min(d, 20)));
  return r === 0 ? 0 : r; // no "-0"
}

/**
 * Tick label: SI suffixes (k, M, G) for large values, otherwise as many decimals as the tick step needs,
 * so that neighbouring ticks always read differently (a loss within 1e-6 of ln 2: 0.6931465, 0.6931470).
 * `axisMax`, the largest |tick| of the axis, picks one form for the whole axis: where every tick is
 * below 1e-4 (learning rates), mantissa and exponent, with the mantissa's digits from the step.
 */
export function formatTick(v: number, step: number, axisMax?: number): string {
  if (Math.abs(v) < Math.abs(step) * 1e-6) v = 0; // float noise around a zero tick
  const av = Math.abs(v);
  axisMax ??= av;
  const units: Array<[number, string]> = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [u, s] of units) {
    if (av >= u && step >= u / 100) {
      const d = Math.max(0, Math.min(3, -Math.floor(Math.log10(step / u) + 1e-9)));
      return `${trimZeros((v / u).toFixed(d))}${s}`;
    }
  }
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  if (axisMax > 0 && axisMax < 1e-4) {
    if (av === 0) return '0';
    const d = Math.max(1, Math.min(6, Math.floor(Math.log10(av) + 1e-9) - stepExp));
    return v.toExponential(d);
  }
  return trimZeros(v.toFixed(Math.max(0, Math.min(12, -stepExp))));
}

function trimZeros(s: string): string {
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s; // no '-0.0'
}

/** Short value for tooltips: 4 significant digits. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

/** `label` cut in its middle with an ellipsis to fit `maxPx` at 12 px (its end kept: the suffix says what it is). */
export function fitLabel(label: string, maxPx: number): string {
  if (textWidth(label) <= maxPx) return label;
  const chars = [...label];
  let keepEnd = Math.min(chars.length, 24); // the suffix, e.g. " (EMA 0.9)", " eval (test)", ", Pearson r -0.1234)"
  let head = chars.length - keepEnd;
  while (head > 0 && textWidth(`${chars.slice(0, head).join('')}…${chars.slice(chars.length - keepEnd).join('')}`) > maxPx) head--;
  while (head === 0 && keepEnd > 1 && textWidth(`…${chars.slice(chars.length - keepEnd).join('')}`) > maxPx) keepEnd--;
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - keepEnd).join('')}`;
}

/** Rough width (px) of `s` at `size` px sans-serif (generous, so that laid-out labels never overlap). */
export function textWidth(s: string, size = 12): number {
  let w = 0;
  for (const ch of s) {
    if (/[ilj.,:;|!'`()\[\] ]/.test(ch)) w += 0.32;
    else if (/[mwMW@%&<>=+~—]/.test(ch)) w += 0.9;
    else if (/[A-Z#]/.test(ch) || ch.charCodeAt(0) > 0x2000) w += 0.72;
    else w += 0.58;
  }
  return w * size;
}

function markerPath(shape: MarkerShape, cx: number, cy: number, r: number): string {
  const f = (v: number) => v.toFixed(1);
  switch (shape) {
    case 'square': return `M${f(cx - r)},${f(cy - r)}h${f(2 * r)}v${f(2 * r)}h${f(-2 * r)}Z`;
    case 'triangle': return `M${f(cx)},${f(cy - r * 1.2)}L${f(cx + r * 1.1)},${f(cy + r * 0.8)}L${f(cx - r * 1.1)},${f(cy + r * 0.8)}Z`;
    case 'diamond': return `M${f(cx)},${f(cy - r * 1.3)}L${f(cx + r * 1.3)},${f(cy)}L${f(cx)},${f(cy + r * 1.3)}L${f(cx - r * 1.3)},${f(cy)}Z`;
    default: return `M${f(cx - r)},${f(cy)}a${f(r)},${f(r)} 0 1,0 ${f(2 * r)},0a${f(r)},${f(r)} 0 1,0 ${f(-2 * r)},0Z`;
  }
}

/** Whether a marker point has a standard error to draw (a whisker from y - err to y + err). */
const hasWhisker = (p: { err?: number }): p is { err: number } => p.err !== undefined && Number.isFinite(p.err) && p.err > 0;

export interface RenderedChart {
  svg: string;
  /** Downsampled series as drawn (for the hover tooltip data). */
  drawn: Array<{ name: string; color: string; dash?: string; smooth?: number; x: number[]; y: number[]; raw?: { x: number[]; y: number[] } }>;
  xTicks: Ticks;
  yTicks: Ticks;
}

/** Renders one chart as an <svg> element string. */
export function renderLineChart(opts: ChartOptions): RenderedChart {
  const W = opts.width ?? 580; let H = opts.height ?? 360;
  const maxPoints = opts.maxPoints ?? 2000;

  const drawn = opts.series.map((s) => {
    const p = finitePoints(s.x, s.y);
    const w = s.smooth ?? 0;
    if (w > 0 && w < 1 && p.x.length > 1) {
      const sm = downsample(p.x, ema(p.y, w), maxPoints);
      return { name: s.name, color: s.color, dash: s.dash, smooth: w, x: sm.x, y: sm.y, raw: downsample(p.x, p.y, maxPoints) };
    }
    const d = downsample(p.x, p.y, maxPoints);
    return { name: s.name, color: s.color, dash: s.dash, x: d.x, y: d.y } as RenderedChart['drawn'][number];
  });
  const markers = (opts.markers ?? []).map((m) => ({ ...m, points: m.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)) }));

  // Data ranges (drawn points include each series' min and max only approximately: use raw extremes).
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
  const take = (x: number, y: number) => {
    if (x < xlo) xlo = x; if (x > xhi) xhi = x;
    if (y < ylo) ylo = y; if (y > yhi) yhi = y;
  };
  for (const s of opts.series) {
    const n = Math.min(s.x.length, s.y.length);
    for (let i = 0; i < n; i++) if (Number.isFinite(s.x[i]) && Number.isFinite(s.y[i])) take(s.x[i], s.y[i]);
  }
  for (const m of markers) {
    for (const p of m.points) {
      take(p.x, p.y);
      if (hasWhisker(p)) { take(p.x, p.y - p.err); take(p.x, p.y + p.err); }
    }
  }
  const hasData = xlo <= xhi;
  if (!hasData) { xlo = 0; xhi = 1; ylo = 0; yhi = 1; }
  if (opts.yDomain) {
    ylo = Math.min(ylo, opts.yDomain[0]);
    yhi = Math.max(yhi, opts.yDomain[1]);
  }
  if (opts.pad && hasData) {
    const dx = xhi > xlo ? 0.04 * (xhi - xlo) : 0.5, dy = yhi > ylo ? 0.04 * (yhi - ylo) : 0.5;
    xlo -= dx; xhi += dx; ylo -= dy; yhi += dy;
  } else if (xlo > 0 && xlo <= 0.25 * (xhi - xlo)) xlo = 0; // start the x axis at 0 when it is close
  // A count at one value (a run of one step): a whole unit either side, not below 0.
  if (opts.integerX && hasData && xlo === xhi) { xlo = Math.max(xlo >= 0 ? 0 : -Infinity, xlo - 1); xhi += 1; }
  const xt = niceTicks(xlo, xhi, 6, opts.integerX ? 1 : 0);
  const yt = opts.yDomain && ylo >= opts.yDomain[0] && yhi <= opts.yDomain[1]
    ? fixedTicks(opts.yDomain[0], opts.yDomain[1])
    : niceTicks(ylo, yhi, 5);

  // Legend: one entry per series (its smoothing named; without points of its own, whether its run has
  // eval markers here), with its run's marker drawn on its line where there are several runs and the run
  // has one kind of marker here; other marker kinds (one run's, several splits, a scatter's runs) an
  // entry each. Wrapped into rows.
  const legendItems: Array<{ label: string; kind: 'line' | MarkerShape; color: string; dash?: string; marker?: MarkerShape }> = [];
  const kindsOf = new Map<string, MarkerSeries[]>();
  for (const m of markers) if (m.points.length) kindsOf.set(m.runName, [...(kindsOf.get(m.runName) ?? []), m]);
  const folded = new Set<MarkerSeries>();
  // One smoothing for every curve of several: said once beside the title, not in each entry.
  const weights = new Set(drawn.filter((d) => d.x.length > 0).map((d) => d.smooth ?? 0));
  const sharedSmooth = drawn.filter((d) => d.x.length > 0).length > 1 && weights.size === 1 ? [...weights][0] : 0;
  for (const d of drawn) {
    const own = kindsOf.get(d.name) ?? [];
    const note = d.x.length === 0 ? (own.length ? ' (eval only)' : ' (no data)') : d.smooth && !sharedSmooth ? ` (EMA ${d.smooth})` : '';
    const marker = own.length === 1 && drawn.length > 1 ? own[0] : undefined; // (one run: its own "eval (split)" entry)
    if (marker) folded.add(marker);
    legendItems.push({ label: d.name + note, kind: 'line', color: d.color, dash: d.dash, marker: marker?.shape });
  }
  // A marker kind in its runs' colour where it has one run (a scatter's), else neutral.
  const markerKinds = new Map<string, { shape: MarkerShape; color: string }>();
  for (const m of markers) {
    if (!m.points.length || folded.has(m)) continue;
    const k = markerKinds.get(m.label);
    if (!k) markerKinds.set(m.label, { shape: m.shape, color: m.color });
    else if (k.color !== m.color) k.color = '#444';
  }
  for (const [label, { shape, color }] of markerKinds) legendItems.push({ label, kind: shape, color });

  const yMax = Math.max(...yt.ticks.map(Math.abs));
  const yLabels = yt.ticks.map((t) => formatTick(t, yt.step, yMax));
  const left = Math.round(30 + Math.max(...yLabels.map((l) => textWidth(l, 11))));
  const right = 18;
  const titleH = 26;
  const legendRowH = 18;
  const legendRows: Array<Array<{ item: (typeof legendItems)[number]; x: number }>> = [[]];
  {
    let cx = left;
    for (const item of legendItems) {
      // A label wider than a row is cut in its middle, so its end (a smoothing, "eval only", r) still shows.
      item.label = fitLabel(item.label, W - right - left - 48);
      const w = 30 + textWidth(item.label) + 18;
      if (cx + w > W - right && legendRows[legendRows.length - 1].length) { legendRows.push([]); cx = left; }
      legendRows[legendRows.length - 1].push({ item, x: cx });
      cx += w;
    }
  }
  const top = titleH + legendRows.length * legendRowH + 10;
  const bottom = 46;
  // The chart grows with its legend (many runs, long names) rather than the plot shrinking under it.
  H += (legendRows.length - 1) * legendRowH;
  const pw = W - left - right, ph = H - top - bottom;
  const sx = (x: number) => left + ((x - xt.min) / (xt.max - xt.min)) * pw;
  const sy = (y: number) => top + ph - ((y - yt.min) / (yt.max - yt.min)) * ph;
  const f1 = (v: number) => v.toFixed(1);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="${escapeXml(opts.id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeXml(opts.title)}"` +
    ` data-left="${left}" data-top="${top}" data-pw="${pw}" data-ph="${ph}" data-x0="${xt.min}" data-x1="${xt.max}" data-y0="${yt.min}" data-y1="${yt.max}">`);
  out.push(`<title>${escapeXml(opts.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  // The shared smoothing beside the title: in full where it fits the width (bold text ~10% wider than
  // textWidth's estimate), else the weight alone.
  const fullNote = `(EMA ${sharedSmooth}, raw values faint)`;
  const note = 1.1 * textWidth(opts.title, 15) + 8 + textWidth(fullNote) <= W - right - left ? fullNote : `(EMA ${sharedSmooth})`;
  out.push(`<text class="ctitle" x="${left}" y="18" font-size="15" font-weight="600" fill="#222">${escapeXml(opts.title)}` +
    `${sharedSmooth ? `<tspan class="smoothing" dx="8" font-size="12" font-weight="400" fill="#666">${note}</tspan>` : ''}</text>`);

  // Legend.
  out.push('<g class="legend">');
  legendRows.forEach((row, r) => {
    const ly = titleH + r * legendRowH + 9;
    for (const { item, x } of row) {
      out.push('<g class="legend-item">');
      if (item.kind === 'line') {
        out.push(`<line x1="${f1(x)}" y1="${ly}" x2="${f1(x + 24)}" y2="${ly}" stroke="${item.color}" stroke-width="3"${item.dash ? ` stroke-dasharray="${item.dash}"` : ''}/>`);
      }
      const glyph = item.kind === 'line' ? item.marker : item.kind;
      if (glyph) out.push(`<path d="${markerPath(glyph, x + 12, ly, 4)}" fill="#fff" stroke="${item.color}" stroke-width="1.6"/>`);
      out.push(`<text x="${f1(x + 30)}" y="${ly + 4}" font-size="12" fill="#222">${escapeXml(item.label)}</text>`);
      out.push('</g>');
    }
  });
  out.push('</g>');

  // Grid and axes.
  out.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
  for (const t of yt.ticks) out.push(`<line x1="${left}" y1="${f1(sy(t))}" x2="${left + pw}" y2="${f1(sy(t))}"/>`);
  for (const t of xt.ticks) out.push(`<line x1="${f1(sx(t))}" y1="${top}" x2="${f1(sx(t))}" y2="${top + ph}"/>`);
  out.push('</g>');
  out.push(`<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push('<g class="yticks" font-size="11" fill="#444" text-anchor="end">');
  yt.ticks.forEach((t, i) => out.push(`<text x="${left - 6}" y="${f1(sy(t) + 4)}">${escapeXml(yLabels[i])}</text>`));
  out.push('</g>');
  // X labels: thin out when they would collide.
  const xMax = Math.max(...xt.ticks.map(Math.abs));
  const xLabels = xt.ticks.map((t) => formatTick(t, xt.step, xMax));
  const maxXLabelW = Math.max(...xLabels.map((l) => textWidth(l, 11))) + 10;
  const every = Math.max(1, Math.ceil(maxXLabelW / (pw / Math.max(xt.ticks.length - 1, 1))));
  out.push('<g class="xticks" font-size="11" fill="#444" text-anchor="middle">');
  xt.ticks.forEach((t, i) => { if (i % every === 0) out.push(`<text x="${f1(sx(t))}" y="${top + ph + 16}">${escapeXml(xLabels[i])}</text>`); });
  out.push('</g>');
  out.push(`<text class="xlabel" x="${f1(left + pw / 2)}" y="${H - 10}" font-size="12" fill="#222" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  out.push(`<text class="ylabel" transform="translate(14,${f1(top + ph / 2)}) rotate(-90)" font-size="12" fill="#222" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`);

  // Series.
  out.push(`<g class="series" fill="none" stroke-width="1.6" stroke-linejoin="round">`);
  for (const d of drawn) {
    if (!d.raw) continue; // faint raw traces first, below every smoothed curve
    const path = d.raw.x.map((x, i) => `${i ? 'L' : 'M'}${f1(sx(x))},${f1(sy(d.raw!.y[i]))}`).join('');
    out.push(`<path class="raw" stroke="${d.color}" stroke-opacity="0.22" stroke-width="1" d="${path}"/>`);
  }
  for (const d of drawn) {
    if (d.x.length === 0) continue;
    const pts = d.x.map((x, i) => `${f1(sx(x))},${f1(sy(d.y[i]))}`).join(' ');
    out.push(`<polyline class="line" data-run="${escapeXml(d.name)}" stroke="${d.color}"${d.raw ? ' stroke-width="2"' : ''}${d.dash ? ` stroke-dasharray="${d.dash}"` : ''} points="${pts}"><title>${escapeXml(d.name)}</title></polyline>`);
    if (d.x.length === 1) out.push(`<circle class="single" cx="${f1(sx(d.x[0]))}" cy="${f1(sy(d.y[0]))}" r="3" fill="${d.color}"/>`);
  }
  out.push('</g>');

  // A run's evaluations where it has no training curve (the eval NLL, Pearson r): joined in x order by a
  // thin line, so their course reads as one, and a run's points stay told apart where they meet another's.
  for (const m of markers) {
    if (m.connect === undefined) continue;
    const pts = m.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (pts.length < 2) continue;
    out.push(`<polyline class="eval-line" data-run="${escapeXml(m.runName)}" stroke="${m.color}" stroke-width="1.2" stroke-opacity="0.7" fill="none"` +
      `${m.connect ? ` stroke-dasharray="${m.connect}"` : ''} points="${pts.map((p) => `${f1(sx(p.x))},${f1(sy(p.y))}`).join(' ')}"/>`);
  }
  // Markers on top (see-through, so that markers of several runs at one point all show), each standard
  // error as a whisker behind its marker.
  out.push('<g class="markers" stroke-width="1.8">');
  for (const m of markers) {
    for (const p of m.points) {
      if (hasWhisker(p)) {
        const x = f1(sx(p.x)); const y0 = sy(p.y - p.err); const y1 = sy(p.y + p.err);
        out.push(`<path class="err" d="M${x},${f1(y0)}V${f1(y1)}M${f1(sx(p.x) - 3)},${f1(y0)}h6M${f1(sx(p.x) - 3)},${f1(y1)}h6" stroke="${m.color}" stroke-width="1.2" fill="none"/>`);
      }
      const tip = p.tip ?? `${m.runName} ${m.label}: ${formatValue(p.y)} at ${formatValue(p.x)}`;
      out.push(`<path class="marker" data-run="${escapeXml(m.runName)}" d="${markerPath(m.shape, sx(p.x), sy(p.y), 4.2)}" fill="#fff" fill-opacity="0.35" stroke="${m.color}"><title>${escapeXml(tip)}</title></path>`);
    }
  }
  out.push('</g>');

  if (!hasData) out.push(`<text class="nodata" x="${f1(left + pw / 2)}" y="${f1(top + ph / 2)}" font-size="14" fill="#888" text-anchor="middle">no data</text>`);
  out.push(`<line class="hover" x1="0" y1="${top}" x2="0" y2="${top + ph}" stroke="#888" stroke-dasharray="3,3" visibility="hidden"/>`);
  out.push('</svg>');
  return { svg: out.join('\n'), drawn, xTicks: xt, yTicks: yt };
}

function fixedTicks(lo: number, hi: number): Ticks {
  const t = niceTicks(lo, hi, 5);
  return { ...t, min: lo, max: hi, ticks: t.ticks.filter((v) => v >= lo - 1e-12 && v <= hi + 1e-12) };
}
