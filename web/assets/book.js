// The public booking page (issue 21): pick a physician's free time, give your details, type
// the code sent to your e-mail or phone, and get the join and manage links.
// `/book?physician=s_…` books one physician; `?lang=es` opens it in Spanish. A physician
// with several visit types (first visit, follow-up …) gets a choice of type above their
// times; the times listed are of the type chosen (its length).

import { $, h, showOnly } from './ui.js';
import { api } from './api.js';
import { t, setLang, pickLang, lang } from './i18n.js';

const params = new URLSearchParams(location.search);
// `types`: physician id → the visit type the patient chose (absent: the physician's first).
const state = { info: null, chosen: null, held: null, types: new Map() };
const show = (id) => showOnly('.stage-section', `s-${id}`);
const DAY = 86_400_000;

/** "lunes, 14 de marzo, 09:30" in the physician's zone and the page's language. */
export function when(ms, zone, withDate = true) {
  const opts = withDate
    ? { weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZone: zone }
    : { hour: '2-digit', minute: '2-digit', timeZone: zone };
  return new Intl.DateTimeFormat(lang, opts).format(new Date(ms));
}

function dayOf(ms, zone) {
  return new Intl.DateTimeFormat(lang, { weekday: 'long', day: 'numeric', month: 'long', timeZone: zone }).format(new Date(ms));
}

/** "Follow-up (20 min)", or "20 min" for an unnamed type. */
function typeLabel(v) {
  const mins = t('book.mins', { mins: v.mins });
  return v.name ? `${v.name} (${mins})` : mins;
}

async function listSlots() {
  const q = new URLSearchParams({ from: String(Date.now()), to: String(Date.now() + 14 * DAY) });
  const physician = params.get('physician');
  if (physician) q.set('physician', physician);
  if ($('#f-language').value) q.set('language', $('#f-language').value);
  if ($('#f-gender').value) q.set('gender', $('#f-gender').value);
  const box = $('#slots');
  box.replaceChildren(h('p', {}, t('book.loading')));
  const list = await api('GET', `/api/booking/slots?${q}`);
  // A physician whose visit type the patient changed: their times of that type.
  for (const [i, p] of list.entries()) {
    const key = state.types.get(p.physician.id);
    if (!key || key === p.visit_type) continue;
    const one = new URLSearchParams(q);
    one.set('physician', p.physician.id);
    one.set('visit_type', key);
    const [again] = await api('GET', `/api/booking/slots?${one}`);
    if (again) list[i] = again;
  }
  box.replaceChildren();
  const shown = list.filter((p) => p.slots.length || p.physician.visit_types.length > 1);
  if (!shown.length) box.append(h('p', { class: 'notice' }, t('book.no_slots')));
  for (const p of shown) {
    box.append(h('h2', {}, p.physician.name));
    const types = p.physician.visit_types;
    if (types.length > 1) {
      const id = `type-${p.physician.id}`;
      box.append(h('label', { for: id }, t('book.visit_type')), h('select', {
        id, class: 'visit-type',
        onchange: async (ev) => { state.types.set(p.physician.id, ev.target.value); await listSlots(); },
      }, types.map((v) => h('option', { value: v.key, selected: v.key === p.visit_type }, typeLabel(v)))));
    }
    if (!p.slots.length) box.append(h('p', { class: 'notice' }, t('book.no_slots')));
    const visitType = types.find((v) => v.key === p.visit_type);
    const byDay = new Map();
    for (const s of p.slots) {
      const d = dayOf(s.starts_at, p.physician.zone);
      if (!byDay.has(d)) byDay.set(d, []);
      byDay.get(d).push(s);
    }
    for (const [d, slots] of byDay) {
      box.append(h('h3', {}, d), h('div', { class: 'row slot-row' }, slots.map((s) => h('button', {
        type: 'button', class: 'secondary small slot', dataset: { start: String(s.starts_at), end: String(s.ends_at) },
        onclick: () => choose(p.physician, s, types.length > 1 ? visitType : null),
      }, when(s.starts_at, p.physician.zone, false)))));
    }
  }
}

function choose(physician, slot, visitType) {
  state.chosen = { physician, slot, visitType };
  $('#chosen').textContent = t('book.chosen', { physician: physician.name, when: when(slot.starts_at, physician.zone) })
    + (visitType ? ` · ${typeLabel(visitType)}` : '');
  $('#form-error').textContent = '';
  show('form');
  $('#name').focus();
}

async function book(ev) {
  ev.preventDefault();
  const { physician, slot, visitType } = state.chosen;
  const body = {
    physician: physician.id, visit_type: visitType?.key ?? null, starts_at: slot.starts_at, name: $('#name').value,
    email: $('#email').value || null, phone: $('#phone').value || null,
    birth_date: $('#birth-date').value, reason: $('#reason').value, lang, consent: $('#consent').checked,
  };
  $('#book-submit').disabled = true;
  try {
    state.held = await api('POST', '/api/booking', body);
    const where = state.held.channels.map((c) => t(`book.channel_${c}`)).join(t('book.and'));
    $('#code-sent').textContent = t('book.code_sent', { where });
    show('code');
    $('#code').focus();
  } catch (e) {
    $('#form-error').textContent = e.message;
    if (e.code === 'slot_taken') await listSlots();
  } finally {
    $('#book-submit').disabled = false;
  }
}

async function confirm(ev) {
  ev.preventDefault();
  try {
    const done = await api('POST', `/api/booking/${encodeURIComponent(state.held.appointment)}/confirm`, { code: $('#code').value.trim() });
    $('#done-when').textContent = t('book.done_when', { physician: done.physician_name, when: when(done.starts_at, done.zone) });
    $('#join-link').href = new URL(done.join_url).pathname;
    $('#manage-link').href = new URL(done.manage_url).pathname;
    show('done');
  } catch (e) {
    $('#code-error').textContent = e.message;
  }
}

async function start() {
  await setLang(pickLang(params.get('lang')));
  $('#lang').value = lang;
  $('#lang').addEventListener('change', async () => { await setLang($('#lang').value); if (state.info) await listSlots(); });
  state.info = await api('GET', '/api/booking');
  if (state.info.clinic) $('#brand').textContent = state.info.clinic;
  if (!state.info.channels.length) { show('off'); return; }
  // Only the contacts a code can reach are asked for.
  if (!state.info.channels.includes('email')) $('#email').disabled = true;
  if (!state.info.channels.includes('text')) $('#phone').disabled = true;
  for (const id of ['#f-language', '#f-gender']) $(id).addEventListener('change', listSlots);
  $('#book-form').addEventListener('submit', book);
  $('#back').addEventListener('click', async () => { show('pick'); await listSlots(); });
  $('#code-form').addEventListener('submit', confirm);
  show('pick');
  await listSlots();
}

start();
