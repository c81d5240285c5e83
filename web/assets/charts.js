// Inline SVG charts: small enough to need no library.
import { t } from './i18n.js';
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A trend line of numbers, oldest first; the last point is marked. `also` is a second series
 * on the same axis (diastolic under systolic), so both share one scale and one unit.
 */
export function sparkline(values, { width = 90, height = 24, label = '', also = null } = {}) {
  const el = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img', 'aria-label': label });
  const finite = (v) => typeof v === 'number' && Number.isFinite(v);
  const series = [values, also].filter(Array.isArray).map((s) => s.map((v) => (finite(v) ? v : null)));
  const all = series.flat().filter(finite);
  if (values.filter(finite).length < 2) return el;
  const min = Math.min(...all); const max = Math.max(...all);
  const span = max - min || 1;
  const n = values.length;
  const x = (i) => 2 + (i * (width - 4)) / (n - 1);
  const y = (v) => height - 3 - ((v - min) * (height - 6)) / span;
  for (const s of series) {
    const pts = s.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    el.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: '#0b5fb3', 'stroke-width': 1.5 }));
    const last = s.length - 1;
    if (s[last] !== null) el.append(svg('circle', { cx: x(last), cy: y(s[last]), r: 2.5, fill: '#0b5fb3' }));
  }
  return el;
}

/** Horizontal bars: [{label, value, color}] with values as text beside them. */
export function bars(rows, { width = 360, label = '' } = {}) {
  const rowH = 26; const labelW = 110;
  const height = rows.length * rowH + 4;
  // Its natural width, shrunk to fit (examroom.css `svg.chart`); no style attribute: the CSP refuses inline styles.
  const el = svg('svg', { width, viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label });
  const max = Math.max(1, ...rows.map((r) => r.value || 0));
  rows.forEach((r, i) => {
    const y = i * rowH + 2;
    const name = svg('text', { x: 0, y: y + 17, 'font-size': 13, fill: '#1b1f24' });
    name.textContent = r.label;
    el.append(name);
    const w = ((width - labelW - 50) * (r.value || 0)) / max;
    el.append(svg('rect', { x: labelW, y: y + 4, width: Math.max(1, w), height: rowH - 10, fill: r.color || '#0b5fb3', rx: 3 }));
    const v = svg('text', { x: labelW + w + 6, y: y + 17, 'font-size': 13, fill: '#1b1f24' });
    v.textContent = r.text ?? String(r.value ?? 0);
    el.append(v);
  });
  return el;
}

/** NPS on its −100…100 scale as a marker on a coloured band. */
export function npsGauge(nps, { width = 320 } = {}) {
  const el = svg('svg', { width, viewBox: `0 0 ${width} 46`, class: 'chart', role: 'img', 'aria-label': typeof nps === 'number' ? `NPS ${nps}` : t('fig.nps_none') });
  const x = (v) => 10 + ((v + 100) * (width - 20)) / 200;
  el.append(svg('rect', { x: x(-100), y: 14, width: x(0) - x(-100), height: 12, fill: '#f1aaa4' }));
  el.append(svg('rect', { x: x(0), y: 14, width: x(50) - x(0), height: 12, fill: '#f0c27a' }));
  el.append(svg('rect', { x: x(50), y: 14, width: x(100) - x(50), height: 12, fill: '#9fd3ae' }));
  for (const v of [-100, 0, 50, 100]) {
    const tick = svg('text', { x: x(v), y: 42, 'font-size': 11, 'text-anchor': 'middle', fill: '#4a5562' });
    tick.textContent = String(v);
    el.append(tick);
  }
  if (typeof nps === 'number') el.append(svg('path', { d: `M${x(nps) - 6},4 L${x(nps) + 6},4 L${x(nps)},14 Z`, fill: '#1b1f24' }));
  return el;
}
