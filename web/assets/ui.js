// Small DOM helpers shared by every page. No framework: elements are built with h().
import { t, lang } from './i18n.js';
import { api } from './api.js';

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** h('li', {class: 'x', onclick: f}, 'text', child) — attributes, then children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Show exactly one of the sections matching `selector`. */
export function showOnly(selector, id) {
  for (const el of $$(selector)) el.hidden = el.id !== id;
}

let toastTimer;
export function toast(text) {
  let el = $('#toast');
  if (!el) {
    el = h('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' });
    document.body.append(el);
  }
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

/** "4 min", "1 h 5 min", "35 s" */
export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '–';
  secs = Math.max(0, Math.round(secs));
  if (secs < 60) return `${secs} s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function time(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

/** Copy text; falls back to selecting it when the clipboard is refused. */
export async function copy(text, fallbackEl) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackEl) {
      const r = document.createRange();
      r.selectNodeContents(fallbackEl);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
    return false;
  }
}

/** Form fields as an object; empty strings left out. */
export function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  }
  return out;
}

/**
 * What a join link just made is for, said beside its URL so nobody sends it to the wrong
 * person: "For Ana López · record demo-patient-1 · Family medicine · made at 14:02".
 */
export function linkSummary(body, roomName) {
  const at = new Date();
  const hm = `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
  return [
    body.patient_name ? t('link.for', { name: body.patient_name }) : t('link.for_unnamed'),
    body.patient_ref ? t('link.record', { ref: body.patient_ref }) : t('link.no_record'),
    body.reason ? t('link.reason_is', { reason: body.reason }) : null,
    roomName || null,
    t('link.made_at', { time: hm }),
  ].filter(Boolean).join(' · ');
}

/** "Works until 9 Dec 2026, 14:02 (7 days), once": when a one-time link stops working. */
export function expiryText(ms) {
  if (!ms) return t('link.no_expiry');
  const when = new Date(ms).toLocaleString(lang, { dateStyle: 'medium', timeStyle: 'short' });
  const left = Math.max(0, ms - Date.now());
  const span = left >= 86400e3 ? t('link.days', { n: Math.round(left / 86400e3) }) : t('link.hours', { n: Math.max(1, Math.round(left / 3600e3)) });
  return t('link.expires', { when, span });
}

let clinicInfo;
/**
 * Fill `el` with whom to ask when a page cannot go on: the clinic's name and contact from
 * `GET /api/clinic` (`[clinic]` in the server's settings), in the page's language. Fetched
 * once per page; without a contact the text says to ask whoever sent the link.
 */
export async function clinicContact(el) {
  clinicInfo ||= api('GET', '/api/clinic').catch(() => ({}));
  const { name, contact } = await clinicInfo;
  const clinic = name || t('clinic.unnamed');
  el.textContent = contact ? t('clinic.contact', { clinic, contact }) : t('clinic.no_contact', { clinic });
  el.hidden = false;
}
