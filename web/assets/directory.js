// The public physician directory (issue 22, GET /api/directory): filter by specialty,
// language, gender, taking new patients, distance from a place and the next free
// appointment; sort by distance or by the earliest free appointment; each physician who
// takes appointments online links to their booking page. The filters are kept in the
// address (`/directory?language=es&near=Zaragoza`), so a search can be reloaded or shared;
// `?lang=es` opens the page in Spanish. Only what each physician chose to publish is shown.
import { $, h } from './ui.js';
import { api } from './api.js';
import { t, tn, setLang, pickLang, lang } from './i18n.js';

const DAY = 86_400_000;
// The form's own fields, as the page's address carries them.
const FIELDS = ['specialty', 'language', 'gender', 'free', 'near', 'within_km', 'sort'];
// "41.65,-0.89" is a point already; anything else is a town or postcode the server places.
const POINT = /^\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*$/;

const state = { results: null, origin: null, specialties: new Set(), asked: 0 };

/** The form as the page's address: only what is filled in. */
function formState(form) {
  const q = new URLSearchParams();
  for (const name of FIELDS) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  if (form.elements.accepting_new.checked) q.set('accepting_new', 'true');
  return q;
}

function fillForm(form, q) {
  for (const name of FIELDS) if (q.has(name)) form.elements[name].value = q.get(name);
  form.elements.accepting_new.checked = q.get('accepting_new') === 'true';
}

/** The page's filters as the API's query: a place or a point, a time for "free within". */
function apiQuery(page) {
  const q = new URLSearchParams();
  for (const name of ['specialty', 'language', 'gender', 'within_km', 'sort', 'accepting_new']) {
    if (page.has(name)) q.set(name, page.get(name));
  }
  const near = page.get('near');
  if (near) q.set(POINT.test(near) ? 'near' : 'place', POINT.test(near) ? near.replace(/\s+/g, '') : near);
  if (page.has('free')) q.set('free_before', String(Date.now() + Number(page.get('free')) * DAY));
  return q;
}

const languageName = (code) => {
  try { return new Intl.DisplayNames([lang], { type: 'language' }).of(code) || code; } catch { return code; }
};
const genderName = (g) => ({ f: t('dir.gender_f'), m: t('dir.gender_m') }[String(g).toLowerCase()] || g);
const visitType = (v) => (['video', 'in_person', 'phone'].includes(v) ? t(`dir.visit_${v}`) : v);
const when = (ms) => new Intl.DateTimeFormat(lang, { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
const km = (d) => new Intl.NumberFormat(lang, { maximumFractionDigits: d < 10 ? 1 : 0 }).format(d);

/** A place as the "near" box shows it, and as `place=` reads it back: "Zaragoza, Spain". */
const placeName = (p) => `${p.name}, ${p.country}`;

/** Offers places as the patient types in "near" (GET /api/places), nearest the clinic first. */
function suggestPlaces(input, list) {
  let timer = null;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q.length < 2 || POINT.test(q)) { list.replaceChildren(); return; }
    timer = setTimeout(async () => {
      const found = await api('GET', `/api/places?${new URLSearchParams({ q })}`).catch(() => []);
      if (input.value.trim() !== q) return;
      list.replaceChildren(...found.map((p) => h('option', { value: placeName(p) }, p.region ? `${placeName(p)} (${p.region})` : placeName(p))));
    }, 250);
  });
}

/** The booking page in the language this page is in. */
function bookHref(url) {
  const u = new URL(url, location.origin);
  if (lang !== 'en') u.searchParams.set('lang', lang);
  return u.origin === location.origin ? `${u.pathname}${u.search}` : u.href;
}

function result(l) {
  const name = l.display_name;
  const fact = (text) => (text ? h('li', {}, text) : null);
  return h('li', { class: 'card dir-result', dataset: { physician: l.id } },
    // Decorative next to the name it shows: the name is the text.
    l.photo_url ? h('img', { class: 'dir-photo', src: l.photo_url, alt: '', width: 72, height: 72, loading: 'lazy' }) : null,
    h('div', { class: 'dir-body' },
      h('h3', {}, name),
      l.specialties?.length ? h('p', { class: 'dir-specialties' }, l.specialties.join(', ')) : null,
      h('ul', { class: 'dir-facts' },
        fact(l.languages?.length ? t('dir.speaks', { languages: l.languages.map(languageName).join(', ') }) : null),
        fact(l.gender ? t('dir.gender_is', { gender: genderName(l.gender) }) : null),
        fact(l.visit_types?.length ? t('dir.visit_types', { types: l.visit_types.map(visitType).join(', ') }) : null),
        fact(l.accepting_new ? t('dir.takes_new') : t('dir.takes_no_new')),
        fact(typeof l.distance_km === 'number' ? t('dir.distance', { km: km(l.distance_km) }) : null),
        fact(l.next_free_at ? t('dir.next_free', { when: when(l.next_free_at) }) : null)),
      l.sites?.length ? h('p', { class: 'dir-sites' }, l.sites.map((s) => (s.address ? `${s.name} — ${s.address}` : s.name)).join('; ')) : null,
      l.bio ? h('p', { class: 'dir-bio' }, l.bio) : null,
      l.book_url
        ? h('a', { class: 'button dir-book', href: bookHref(l.book_url) }, t('dir.book', { name }))
        : h('p', { class: 'muted' }, t('dir.no_booking'))));
}

function render() {
  if (!state.results) return;
  const list = state.results;
  $('#dir-results').replaceChildren(...list.map(result));
  $('#dir-count').textContent = list.length ? tn('dir.count', list.length) : t('dir.none');
  $('#dir-origin').hidden = !state.origin;
  if (state.origin) $('#dir-origin').textContent = t('dir.from', { place: state.origin.name });
  $('#dir-specialties').replaceChildren(...[...state.specialties].sort().map((s) => h('option', { value: s })));
}

/** Where a refused filter is typed, to put the cursor back there. */
const FIELD_INPUT = { near: '#dir-near', place: '#dir-near', within_km: '#dir-within', specialty: '#dir-specialty', language: '#dir-language', gender: '#dir-gender', free_before: '#dir-free', sort: '#dir-sort' };

async function search({ push = true } = {}) {
  const form = $('#dir-form');
  const page = formState(form);
  $('#dir-error').textContent = '';
  if (page.has('within_km') && !page.has('near')) {
    $('#dir-error').textContent = t('dir.within_needs_near');
    $('#dir-near').focus();
    return;
  }
  if (push) {
    const address = new URLSearchParams(page);
    if (lang !== 'en') address.set('lang', lang);
    history.replaceState(null, '', `${location.pathname}${address.toString() ? `?${address}` : ''}`);
  }
  const asked = ++state.asked;
  $('#dir-results').setAttribute('aria-busy', 'true');
  $('#dir-count').textContent = t('dir.searching');
  try {
    const query = apiQuery(page);
    const res = await api('GET', `/api/directory?${query}`);
    // Where a place search measures from, so "Madrid" is seen to be the Spanish one: the
    // first place GET /api/places gives is the one the directory used.
    const place = query.get('place');
    const places = place ? await api('GET', `/api/places?${new URLSearchParams({ q: place })}`).catch(() => []) : [];
    if (asked !== state.asked) return;
    state.results = res;
    state.origin = places[0] ? { name: placeName(places[0]) } : null;
    for (const l of state.results) for (const s of l.specialties || []) state.specialties.add(s);
    render();
  } catch (e) {
    if (asked !== state.asked) return;
    state.results = null;
    $('#dir-results').replaceChildren();
    $('#dir-count').textContent = '';
    $('#dir-error').textContent = e.code === 'unknown_place' ? t('dir.unknown_place', { place: page.get('near') }) : e.message;
    const at = e.code === 'unknown_place' ? '#dir-near' : FIELD_INPUT[e.body?.field];
    if (at) $(at).focus();
  } finally {
    if (asked === state.asked) $('#dir-results').removeAttribute('aria-busy');
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  await setLang(pickLang(params.get('lang')));
  const picker = $('#lang');
  picker.value = lang;
  picker.addEventListener('change', async () => {
    await setLang(picker.value);
    render();
    search();
  });
  api('GET', '/api/clinic').then((c) => { if (c?.name) $('#brand').textContent = c.name; }).catch(() => {});
  const form = $('#dir-form');
  fillForm(form, params);
  suggestPlaces($('#dir-near'), $('#dir-near-list'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); search(); });
  // After the browser cleared the fields.
  form.addEventListener('reset', () => setTimeout(() => search(), 0));
  await search({ push: false });
}

start();
