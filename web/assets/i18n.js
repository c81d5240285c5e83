// Every page's strings live in assets/i18n/: <lang>.json has what the patient page needs
// (and the dialogs and device pickers both sides use); <lang>.staff.json adds the staff
// pages' (`staff.`, `dash.`, `admin.`, `setup.`, `link.`, `fig.`, `outcome.`), so a patient
// on a phone does not download the console's strings.
// t('key', {name}) fills {name}; elements with data-i18n="key" get their text from it,
// data-i18n-attr="aria-label:key;placeholder:key2" fills attributes.

export const LANGUAGES = ['en', 'es'];
let strings = {};
let fallback = {};
export let lang = 'en';
// Staff pages also load <lang>.staff.json (set by staffLang before the first setLang).
let parts = [''];

export function pickLang(wanted) {
  const cands = [wanted, ...(navigator.languages || [navigator.language])].filter(Boolean);
  for (const c of cands) {
    const base = String(c).toLowerCase().split(/[-_]/)[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

async function load(l) {
  const all = await Promise.all(parts.map(async (part) => {
    const res = await fetch(`/assets/i18n/${l}${part}.json`);
    return res.ok ? res.json() : {};
  }));
  return Object.assign({}, ...all);
}

export async function setLang(l) {
  lang = LANGUAGES.includes(l) ? l : 'en';
  fallback = Object.keys(fallback).length ? fallback : await load('en');
  strings = lang === 'en' ? fallback : await load(lang);
  document.documentElement.lang = lang;
  apply();
}

export function t(key, vars = {}) {
  const s = strings[key] ?? fallback[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? `{${k}}`));
}

/** "1 patient" / "3 patients": `key.one` when n is 1, `key.other` otherwise. */
export function tn(key, n, vars = {}) {
  return t(`${key}.${n === 1 ? 'one' : 'other'}`, { n, ...vars });
}

export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}

// --- the staff pages: the browser's language, or the one chosen in the top bar ------------

const STAFF_LANG = 'examroom.staff.lang';

/**
 * Staff pages: load the language (the one chosen before on this browser, else the
 * browser's) and wire the top bar's `#lang` picker; a change is kept for every staff page
 * and `onChange` re-renders what the page built in script.
 */
export async function staffLang(onChange = () => {}) {
  parts = ['', '.staff'];
  let stored = null;
  try { stored = localStorage.getItem(STAFF_LANG); } catch { /* storage refused: the browser's language */ }
  await setLang(pickLang(stored));
  const picker = document.getElementById('lang');
  if (!picker) return;
  picker.value = lang;
  picker.addEventListener('change', async () => {
    try { localStorage.setItem(STAFF_LANG, picker.value); } catch { /* for this page only */ }
    await setLang(picker.value);
    onChange();
  });
}
