// The manage page of a booked appointment (issue 21): view it, move it to another free time
// of the same physician, cancel it, or stop its reminders (`#reminders-off`, the link in a
// reminder, asks for that at once). The token in the path is the only key.

import { $, h, showOnly } from './ui.js';
import { api } from './api.js';
import { t, setLang, pickLang, lang } from './i18n.js';

const token = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const base = `/api/manage/${encodeURIComponent(token)}`;
const show = (id) => showOnly('.stage-section', `s-${id}`);
let appt = null;

const when = (ms) => new Intl.DateTimeFormat(lang, {
  weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZone: appt.zone,
}).format(new Date(ms));

function render() {
  $('#when').textContent = t('book.done_when', { physician: appt.physician_name, when: when(appt.starts_at) })
    + (appt.visit_name ? ` · ${appt.visit_name}` : '');
  $('#status').textContent = t(`manage.status_${appt.status}`) + (appt.reminders_off ? ` ${t('manage.no_reminders')}` : '');
  const open = appt.status === 'confirmed';
  $('#join-link').hidden = !open;
  if (open) $('#join-link').href = new URL(appt.join_url).pathname;
  for (const id of ['#move', '#cancel', '#reminders-off']) $(id).hidden = !open;
  $('#reminders-off').hidden = !open || appt.reminders_off;
  $('#slots').hidden = true;
}

async function act(path, body) {
  $('#action-error').textContent = '';
  try {
    appt = await api('POST', `${base}/${path}`, body);
    render();
  } catch (e) {
    $('#action-error').textContent = e.message;
  }
}

async function pickAnother() {
  // Times of the same visit type: a move keeps the type and its length.
  const q = new URLSearchParams({
    physician: appt.physician, visit_type: appt.visit_type, from: String(Date.now()), to: String(Date.now() + 14 * 86_400_000),
  });
  const list = await api('GET', `/api/booking/slots?${q}`);
  const slots = list[0]?.slots || [];
  const box = $('#slots');
  box.hidden = false;
  box.replaceChildren(h('h2', {}, t('manage.move')), slots.length
    ? h('div', { class: 'row' }, slots.map((s) => h('button', { type: 'button', class: 'secondary small slot', onclick: () => act('move', { starts_at: s.starts_at }) }, when(s.starts_at))))
    : h('p', { class: 'notice' }, t('book.no_slots')));
}

async function start() {
  try {
    appt = await api('GET', base);
  } catch (e) {
    await setLang(pickLang());
    $('#error-text').textContent = e.message;
    show('error');
    return;
  }
  await setLang(pickLang(appt.lang));
  render();
  show('view');
  $('#cancel').addEventListener('click', () => act('cancel'));
  $('#reminders-off').addEventListener('click', () => act('reminders-off'));
  $('#move').addEventListener('click', pickAnother);
  if (location.hash === '#reminders-off' && appt.status === 'confirmed' && !appt.reminders_off) await act('reminders-off');
}

start();
