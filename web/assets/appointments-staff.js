// Appointments on the staff pages (issue 21), kept apart from dashboard.js and admin.js:
// - dashboard: the physician's upcoming appointments (time, visit type, patient, reason)
//   with move (to a free time of the same visit type) and cancel, and their schedule
//   (weekly hours, days off, visit types and lengths, zone, room);
// - admin: whether reminders can go out, appointment figures with no-shows, failed notices.
// Runs once the page has signed in (`#app` shown).

import { $, h } from './ui.js';
import { api } from './api.js';
import { t, lang } from './i18n.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const fmt = (ms) => new Intl.DateTimeFormat(lang, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' }).format(new Date(ms));

async function appointments() {
  const list = await api('GET', '/api/appointments');
  const ul = $('#appt-list');
  ul.replaceChildren();
  const open = list.filter((a) => a.status === 'confirmed' || a.status === 'pending');
  if (!open.length) ul.append(h('li', { class: 'muted' }, t('appt.none')));
  for (const a of open) {
    const li = h('li', { class: 'appt', dataset: { id: a.id } },
      h('strong', {}, fmt(a.starts_at)), ' ', a.visit_name ? `${a.visit_name} · ` : '', a.patient_name, ' — ', a.reason,
      a.status === 'pending' ? h('span', { class: 'badge muted' }, t('appt.pending')) : '',
      ' ', a.status === 'confirmed' ? h('button', { type: 'button', class: 'secondary small appt-move', onclick: () => pickTime(li, a) }, t('appt.move')) : '',
      ' ', h('button', {
        type: 'button', class: 'secondary small', onclick: async () => {
          await api('POST', `/api/appointments/${encodeURIComponent(a.id)}/cancel`);
          await appointments();
        },
      }, t('appt.cancel')));
    ul.append(li);
  }
}

/** The free times of the appointment's physician and visit type, under its entry; picking
 * one moves it there (one request: the server moves it atomically, or says the time went). */
async function pickTime(li, a) {
  li.querySelector('.appt-times')?.remove();
  const q = new URLSearchParams({
    physician: a.physician, visit_type: a.visit_type, from: String(Date.now()), to: String(Date.now() + 14 * 86_400_000),
  });
  const list = await api('GET', `/api/booking/slots?${q}`);
  const slots = list[0]?.slots || [];
  const error = h('p', { class: 'form-error', role: 'alert' });
  const box = h('div', { class: 'appt-times' },
    h('p', {}, t('appt.move_to', { patient: a.patient_name })),
    slots.length
      ? h('div', { class: 'row' }, slots.slice(0, 40).map((s) => h('button', {
        type: 'button', class: 'secondary small appt-slot', dataset: { start: String(s.starts_at) },
        onclick: async () => {
          try {
            await api('POST', `/api/appointments/${encodeURIComponent(a.id)}/move`, { starts_at: s.starts_at });
            await appointments();
          } catch (e) {
            error.textContent = e.message;
          }
        },
      }, fmt(s.starts_at))))
      : h('p', { class: 'muted' }, t('appt.no_free')),
    error,
    h('button', { type: 'button', class: 'secondary small', onclick: () => box.remove() }, t('appt.keep')));
  li.append(box);
}

function spanList(text) {
  return text.split(/[,;]/).map((s) => s.trim()).filter(Boolean);
}

async function schedule() {
  const rooms = await api('GET', '/api/my/rooms');
  $('#appt-room').replaceChildren(...rooms.map((r) => h('option', { value: r.id }, r.name)));
  // Visit types: one line each, `key, name, minutes`; made here so the page's markup stays as it is.
  if (!$('#appt-types')) {
    $('#appt-days').before(
      h('label', { for: 'appt-types' }, t('appt.visit_types')),
      h('textarea', { id: 'appt-types', name: 'visit_types', rows: 3, placeholder: 'first, First visit, 40\nfollow-up, Follow-up, 20' }));
  }
  const days = $('#appt-days');
  days.replaceChildren(...DAYS.map((d) => h('div', {},
    h('label', { for: `appt-day-${d}` }, t(`appt.day_${d}`)),
    h('input', { id: `appt-day-${d}`, type: 'text', placeholder: '09:00-13:00, 15:00-18:00' }))));
  let current = null;
  try { current = await api('GET', '/api/my/schedule'); } catch { /* none yet: the form starts empty */ }
  if (current) {
    $('#appt-room').value = current.room;
    $('#appt-zone').value = current.zone;
    $('#appt-visit').value = current.visit_mins;
    // One unnamed type is the length field alone.
    const named = current.visit_types.length > 1 || current.visit_types.some((v) => v.name || v.key !== 'visit');
    $('#appt-types').value = named ? current.visit_types.map((v) => `${v.key}, ${v.name}, ${v.mins}`).join('\n') : '';
    $('#appt-buffer').value = current.buffer_mins;
    for (const d of DAYS) $(`#appt-day-${d}`).value = (current.weekly[d] || []).join(', ');
    $('#appt-exceptions').value = current.exceptions
      .map((e) => [e.first, e.last, ...e.hours].join(' ')).join('\n');
  } else {
    $('#appt-zone').value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  }
  $('#appt-schedule-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#appt-error').textContent = '';
    const weekly = {};
    for (const d of DAYS) {
      const spans = spanList($(`#appt-day-${d}`).value);
      if (spans.length) weekly[d] = spans;
    }
    const exceptions = $('#appt-exceptions').value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const [first, ...rest] = l.split(/\s+/);
      const last = /^\d{4}-\d{2}-\d{2}$/.test(rest[0] || '') ? rest.shift() : first;
      return { first, last, hours: rest };
    });
    const visitTypes = $('#appt-types').value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const parts = l.split(',').map((p) => p.trim());
      const mins = Number(parts.pop());
      return { key: parts.shift() || '', name: parts.join(', '), mins };
    });
    try {
      await api('PUT', '/api/my/schedule', {
        room: $('#appt-room').value, zone: $('#appt-zone').value.trim(), weekly, exceptions,
        ...(visitTypes.length ? { visit_types: visitTypes } : { visit_mins: Number($('#appt-visit').value) }),
        buffer_mins: Number($('#appt-buffer').value || 0),
      });
      $('#appt-error').textContent = t('appt.saved');
    } catch (e) {
      $('#appt-error').textContent = e.message;
    }
  });
}

async function admin() {
  const report = await api('GET', '/api/appointments/notices/failed');
  $('#appt-reminders').textContent = report.channels.length
    ? t('appt.reminders_on', { channels: report.channels.join(', ') })
    : t('appt.reminders_off');
  const s = await api('GET', '/api/appointments/stats');
  const fig = (label, value) => h('div', { class: 'figure' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
  $('#appt-figures').replaceChildren(
    fig(t('appt.confirmed'), String(s.confirmed)),
    fig(t('appt.no_shows'), s.no_show_rate === null ? '—' : `${s.no_shows} (${Math.round(s.no_show_rate * 100)} %)`),
    fig(t('appt.cancelled'), String(s.cancelled)));
  $('#appt-failed').replaceChildren(...report.failed.map((n) => h('li', {},
    `${n.failed_at ? fmt(n.failed_at) : ''} ${n.kind} (${n.channel}): ${n.error || ''}`)));
}

/** Once the page's sign-in has shown the app. */
function whenSignedIn(run) {
  const app = $('#app');
  if (app && !app.hidden) { run(); return; }
  const watch = new MutationObserver(() => {
    if (!app.hidden) { watch.disconnect(); run(); }
  });
  watch.observe(app, { attributes: true, attributeFilter: ['hidden'] });
}

whenSignedIn(async () => {
  try {
    if ($('#appt-card')) { await appointments(); await schedule(); }
    if ($('#appt-admin')) await admin();
  } catch (e) {
    const out = $('#appt-error') || $('#appt-reminders');
    if (out) out.textContent = e.message;
  }
});

// Booked patients in the waiting-room queue: the queue entry of an appointment's visit
// gets its booked time and reason, so the physician tells them from walk-ins. A visit
// the list does not know yet (booked since the page loaded) makes it ask again, once.
const booked = new Map();
const asked = new Set();
let refreshing = null;

function markQueue() {
  let unknown = false;
  for (const li of document.querySelectorAll('li[data-visit]')) {
    const a = booked.get(li.dataset.visit);
    if (!a) { if (!asked.has(li.dataset.visit)) unknown = true; continue; }
    if (li.querySelector('.appt-booked')) continue;
    li.append(h('span', { class: 'badge appt-booked' }, t('appt.booked_for', { time: fmt(a.starts_at), reason: a.reason })));
  }
  if (unknown && !refreshing) refreshing = refreshBooked().finally(() => { refreshing = null; });
}

async function refreshBooked() {
  const seen = [...document.querySelectorAll('li[data-visit]')].map((li) => li.dataset.visit);
  try {
    for (const a of await api('GET', `/api/appointments?from=${Date.now() - 86_400_000}`)) if (a.visit) booked.set(a.visit, a);
  } catch { /* the list above shows the error */ }
  for (const v of seen) asked.add(v);
  markQueue();
}

whenSignedIn(async () => {
  if (!$('#appt-card')) return;
  await refreshBooked();
  new MutationObserver(markQueue).observe($('#rooms'), { childList: true, subtree: true });
  setInterval(() => appointments().catch(() => {}), 60_000);
});
