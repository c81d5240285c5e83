// The admin console: rooms, staff, links, visit history with CSV, patient-experience charts.
import { $, $$, h, toast, duration, time, linkSummary, expiryText, copy } from './ui.js';
import { api } from './api.js';
import { t, staffLang } from './i18n.js';
import { confirmDialog } from './dialog.js';
import { requireStaff } from './staff.js';
import { bars, npsGauge } from './charts.js';

const state = { rooms: [], staff: [], me: null };
const list = (res, key) => (Array.isArray(res) ? res : res?.[key] || res?.items || []);
const ms = (v) => (typeof v === 'number' ? v : v ? Date.parse(v) : null);

// --- tabs (keyboard: arrows move between tabs) -------------------------------------------
function selectTab(tab) {
  for (const t of $$('[role=tab]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(`#${t.getAttribute('aria-controls')}`).hidden = !on;
  }
  const load = { 'tab-rooms': loadRooms, 'tab-staff': loadStaff, 'tab-links': () => { loadLinks(); loadEmergencies(); }, 'tab-visits': loadVisits, 'tab-experience': loadExperience }[tab.id];
  load?.();
}

// --- rooms ------------------------------------------------------------------------------
async function loadRooms() {
  try { state.rooms = list(await api('GET', '/api/rooms'), 'rooms'); } catch (e) { toast(t('admin.failed', { what: t('admin.tab_rooms'), message: e.message })); }
  try { state.staff = list(await api('GET', '/api/staff'), 'staff'); } catch { /* shown under Staff */ }
  const name = (id) => state.staff.find((s) => s.id === id)?.name || id;
  $('#rooms-body').replaceChildren(...state.rooms.map((r) => h('tr', {},
    h('td', {}, r.name), h('td', {}, r.kind === 'walk_in' ? t('admin.kind_walk_in') : t('admin.kind_physician')),
    h('td', {}, (r.physicians || []).map(name).join(', ') || '—'), h('td', {}, r.chat_allowed === false ? t('admin.no') : t('admin.yes')),
    h('td', {}, h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary small', onclick: () => editRoom(r) }, t('admin.edit_room', { name: r.name })),
      h('button', { type: 'button', class: 'danger small', onclick: () => archiveRoom(r) }, t('admin.archive_room', { name: r.name })))))));
  if (!state.rooms.length) $('#rooms-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('admin.no_rooms'))));
  renderPhysicianChoices();
  for (const sel of ['#links-room', '#visits-room', '#exp-room']) {
    const el = $(sel);
    const keep = el.value;
    const opts = state.rooms.map((r) => h('option', { value: r.id }, r.name));
    el.replaceChildren(...(sel === '#links-room' ? [] : [h('option', { value: '' }, t('admin.all_rooms'))]), ...opts);
    el.value = keep || el.options[0]?.value || '';
  }
}

function renderPhysicianChoices(selected = []) {
  const fs = $('#room-physicians');
  const docs = state.staff.filter((s) => (s.roles || []).includes('physician') && s.active !== false);
  fs.replaceChildren(h('legend', {}, t('admin.col_physicians')));
  if (!docs.length) fs.append(h('p', { class: 'muted' }, t('admin.no_physicians')));
  for (const d of docs) {
    fs.append(h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'physicians', value: d.id, checked: selected.includes(d.id) }), d.name || d.email));
  }
}

function editRoom(r) {
  $('#room-form-h').textContent = t('admin.edit_room', { name: r.name });
  $('#room-save').textContent = t('admin.save_room');
  $('#room-id').value = r.id;
  $('#room-name').value = r.name || '';
  $('#room-kind').value = r.kind || 'physician';
  $('#room-message').value = r.waiting_message || '';
  $('#room-message-es').value = r.waiting_messages?.es || '';
  $('#room-max-wait').value = r.max_wait_secs ?? 1800;
  $('#room-hours').value = r.opening_hours || '';
  $('#room-max-participants').value = r.max_participants ?? 4;
  $('#room-chat').checked = r.chat_allowed !== false;
  $('#room-invites').checked = r.invites_allowed !== false;
  renderPhysicianChoices(r.physicians || []);
  $('#room-name').focus();
}

function relabelRoomForm() {
  const editing = state.rooms.find((r) => r.id === $('#room-id').value);
  $('#room-form-h').textContent = editing ? t('admin.edit_room', { name: editing.name }) : t('admin.new_room');
  $('#room-save').textContent = editing ? t('admin.save_room') : t('admin.create_room');
}

/** Each message field of a new room starts with the default text of its own language. */
const MESSAGE_FIELDS = { en: '#room-message', es: '#room-message-es' };
const messageDefaults = Promise.all(Object.keys(MESSAGE_FIELDS).map(async (l) => {
  try { return [l, (await (await fetch(`/assets/i18n/${l}.staff.json`)).json())['admin.room_message_default'] || '']; } catch { return [l, '']; }
})).then(Object.fromEntries);

async function resetRoomForm() {
  $('#room-form').reset();
  $('#room-id').value = '';
  $('#room-form-h').textContent = t('admin.new_room');
  $('#room-save').textContent = t('admin.create_room');
  renderPhysicianChoices();
  const defaults = await messageDefaults;
  for (const [l, sel] of Object.entries(MESSAGE_FIELDS)) if (!$('#room-id').value) $(sel).value = defaults[l];
}

async function saveRoom(ev) {
  ev.preventDefault();
  $('#room-error').textContent = '';
  const body = {
    name: $('#room-name').value.trim(),
    kind: $('#room-kind').value,
    physicians: $$('input[name=physicians]:checked').map((c) => c.value),
    waiting_message: $('#room-message').value.trim(),
    // Languages this form does not show are kept as they are.
    waiting_messages: { ...(state.rooms.find((r) => r.id === $('#room-id').value)?.waiting_messages || {}), es: $('#room-message-es').value.trim() },
    max_wait_secs: Number($('#room-max-wait').value) || 1800,
    max_participants: Number($('#room-max-participants').value) || 4,
    chat_allowed: $('#room-chat').checked,
    invites_allowed: $('#room-invites').checked,
    opening_hours: $('#room-hours').value.trim() || null,
  };
  if (!body.name) { $('#room-error').textContent = t('admin.room_needs_name'); return; }
  const id = $('#room-id').value;
  try {
    if (id) await api('PUT', `/api/rooms/${encodeURIComponent(id)}`, body);
    else await api('POST', '/api/rooms', body);
    toast(id ? t('admin.room_saved') : t('admin.room_created'));
    resetRoomForm();
    loadRooms();
  } catch (e) { $('#room-error').textContent = e.message; }
}

async function archiveRoom(r) {
  const ok = await confirmDialog({ title: t('admin.archive_title', { name: r.name }), text: t('admin.archive_text'), confirm: t('admin.archive'), danger: true });
  if (ok === null) return;
  try { await api('DELETE', `/api/rooms/${encodeURIComponent(r.id)}`); loadRooms(); } catch (e) { toast(e.message); }
}

// --- staff ------------------------------------------------------------------------------
/** pending: invited, no password yet; deactivated: cannot sign in; active otherwise. */
const staffStatus = (s) => (s.active === false ? 'deactivated' : s.has_password === false ? 'pending' : 'active');

async function loadStaff() {
  try { state.staff = list(await api('GET', '/api/staff'), 'staff'); } catch (e) { toast(t('admin.failed', { what: t('admin.tab_staff'), message: e.message })); }
  $('#staff-body').replaceChildren(...state.staff.map(staffRow));
}

function staffRow(s) {
  const status = staffStatus(s);
  // An admin cannot remove their own admin role or deactivate themselves (the server
  // refuses): not offered, said why.
  const self = s.id === state.me;
  const roleBox = (role) => h('label', { class: 'inline', title: self && role === 'admin' ? t('admin.own_admin') : undefined },
    h('input', { type: 'checkbox', checked: (s.roles || []).includes(role), disabled: self && role === 'admin',
      dataset: { staff: s.id, role }, onchange: () => saveRoles(s) }),
    t(`staff.role_${role}`));
  const actions = [];
  if (status !== 'deactivated') {
    actions.push(h('button', { type: 'button', class: 'secondary small', onclick: () => resetStaff(s) },
      status === 'pending' ? t('admin.new_invitation', { name: s.name }) : t('admin.reset_link', { name: s.name })));
    if (!self) actions.push(h('button', { type: 'button', class: 'danger small', onclick: () => setActive(s, false) }, t('admin.deactivate', { name: s.name })));
  } else {
    actions.push(h('button', { type: 'button', class: 'secondary small', onclick: () => setActive(s, true) }, t('admin.reactivate', { name: s.name })));
  }
  // data-label: on a phone each row stacks into a block that names its cells (table.stack).
  return h('tr', { dataset: { staff: s.id, status } },
    h('th', { scope: 'row' }, s.name), h('td', { 'data-label': t('staff.email') }, s.email),
    h('td', { 'data-label': t('admin.col_roles'), class: 'roles' }, roleBox('physician'), roleBox('admin')),
    h('td', { 'data-label': t('admin.col_status') }, h('span', { class: `status-${status}` }, t(`admin.status_${status}`))),
    h('td', {}, h('div', { class: 'row' }, actions)));
}

async function saveRoles(s) {
  $('#staff-error-table').textContent = '';
  const roles = $$(`#staff-body input[data-staff="${s.id}"]:checked`).map((c) => c.dataset.role);
  try {
    await api('PATCH', `/api/staff/${encodeURIComponent(s.id)}`, { roles });
    toast(t('admin.roles_saved', { name: s.name }));
  } catch (e) { $('#staff-error-table').textContent = t('admin.staff_failed', { name: s.name, message: e.message }); }
  loadStaff();
}

async function setActive(s, active) {
  $('#staff-error-table').textContent = '';
  if (!active) {
    const ok = await confirmDialog({ title: t('admin.deactivate_title', { name: s.name }), text: t('admin.deactivate_text'), confirm: t('admin.deactivate_confirm'), danger: true });
    if (ok === null) return;
  }
  try {
    await api('PATCH', `/api/staff/${encodeURIComponent(s.id)}`, { active });
    toast(active ? t('admin.reactivated', { name: s.name }) : t('admin.deactivated', { name: s.name }));
  } catch (e) { $('#staff-error-table').textContent = t('admin.staff_failed', { name: s.name, message: e.message }); }
  loadStaff();
}

/** A one-time set-up link with what it is for, a copy button and when it stops working. */
function showUrl(url, forText, expiresAt) {
  $('#staff-url').textContent = url?.startsWith('http') ? url : new URL(url, location.origin).href;
  $('#staff-out-for').textContent = forText;
  $('#staff-expiry').textContent = `${expiryText(expiresAt)} ${t('link.once')}`;
  $('#staff-out').hidden = false;
  $('#staff-copy').focus();
}

async function inviteStaff(ev) {
  ev.preventDefault();
  $('#staff-error').textContent = '';
  const body = {
    email: $('#staff-email').value.trim(),
    name: $('#staff-name').value.trim(),
    roles: $$('#staff-form input[name=roles]:checked').map((c) => c.value),
  };
  const langs = $('#staff-languages').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (langs.length) body.languages = langs;
  try {
    const res = await api('POST', '/api/staff', body);
    showUrl(res.invitation_url, t('admin.invitation_for', { name: body.name, email: body.email }), res.expires_at);
    $('#staff-form').reset();
    loadStaff();
  } catch (e) { $('#staff-error').textContent = e.message; }
}

async function resetStaff(s) {
  try {
    const res = await api('POST', `/api/staff/${encodeURIComponent(s.id)}/reset`);
    showUrl(res.reset_url, t('admin.reset_for', { name: s.name, email: s.email }), res.expires_at);
  } catch (e) { toast(e.message); }
}

// --- links ------------------------------------------------------------------------------
async function loadLinks() {
  const room = $('#links-room').value;
  if (!room) { if (!state.rooms.length) await loadRooms(); if (!$('#links-room').value) return; }
  try {
    const links = list(await api('GET', `/api/links?room=${encodeURIComponent($('#links-room').value)}`), 'links');
    $('#links-body').replaceChildren(...links.map((l) => {
      const status = l.revoked ? 'revoked' : l.used ? 'used' : l.expired || (ms(l.expires_at) && ms(l.expires_at) < Date.now()) ? 'expired' : 'open';
      const who = l.patient_name || (l.kind === 'guest' ? t('admin.guest') : '—');
      return h('tr', { dataset: { link: l.id, status } }, h('td', {}, who), h('td', {}, time(ms(l.created_at))), h('td', {}, time(ms(l.expires_at))), h('td', {}, t(`admin.link_${status}`)),
        h('td', {}, status === 'open' || status === 'used' ? h('button', { type: 'button', class: 'danger small', onclick: () => revokeLink(l, who) }, t('admin.revoke')) : ''));
    }));
    if (!links.length) $('#links-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('admin.no_links'))));
  } catch (e) { toast(t('admin.failed', { what: t('admin.tab_links'), message: e.message })); }
}

async function revokeLink(l, who) {
  const ok = await confirmDialog({ title: t('admin.revoke_title', { name: who }), text: t('admin.revoke_text'), confirm: t('admin.revoke'), danger: true });
  if (ok === null) return;
  try { await api('DELETE', `/api/links/${encodeURIComponent(l.id)}`); toast(t('admin.revoked')); } catch (e) { toast(e.message); }
  loadLinks();
}

async function mintLink(ev) {
  ev.preventDefault();
  $('#link-error').textContent = '';
  const room = $('#links-room').value;
  if (!room) { $('#link-error').textContent = t('admin.choose_room'); return; }
  const body = { room };
  for (const [k, v] of new FormData(ev.target).entries()) if (String(v).trim()) body[k] = String(v).trim();
  try {
    const link = await api('POST', '/api/links', body);
    $('#link-url').textContent = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
    $('#link-for').textContent = linkSummary(body, $('#links-room').selectedOptions[0]?.textContent);
    $('#link-expiry').textContent = expiryText(link.expires_at);
    $('#link-out').hidden = false;
    ev.target.reset();
    loadLinks();
  } catch (e) { $('#link-error').textContent = e.message; }
}

async function loadEmergencies() {
  try {
    const rows = list(await api('GET', '/api/emergency-access'), 'emergency');
    $('#emergency-body').replaceChildren(...rows.map((g) => h('tr', {},
      h('td', {}, time(ms(g.at))), h('td', {}, g.staff_name || g.staff), h('td', {}, g.room_name || g.room), h('td', {}, h('code', {}, g.visit)), h('td', {}, g.reason))));
    if (!rows.length) $('#emergency-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('admin.none'))));
  } catch (e) { toast(t('admin.failed', { what: t('admin.emergency_heading'), message: e.message })); }
}

// --- visits and experience --------------------------------------------------------------
function query(form) {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form).entries()) {
    if (!v) continue;
    // Dates are local days; the API takes unix ms, `from` inclusive and `to` exclusive.
    if (k === 'from') p.set(k, String(new Date(`${v}T00:00:00`).getTime()));
    else if (k === 'to') { const d = new Date(`${v}T00:00:00`); d.setDate(d.getDate() + 1); p.set(k, String(d.getTime())); } else p.set(k, v);
  }
  return p.toString();
}

/** A visit's outcome as a person says it ("no_show" → "No show"); an unknown code as it came. */
const OUTCOMES = ['waiting', 'admitted', 'in_call', 'ended', 'denied', 'left', 'no_show'];
const outcomeText = (code) => (code ? (OUTCOMES.includes(code) ? t(`outcome.${code}`) : String(code).replace(/_/g, ' ')) : '—');

async function loadVisits() {
  if (!state.rooms.length) await loadRooms();
  const q = query($('#visits-form'));
  $('#visits-csv').href = `/api/visits.csv${q ? `?${q}` : ''}`;
  const roomName = (id) => state.rooms.find((r) => r.id === id)?.name || id;
  try {
    const visits = list(await api('GET', `/api/visits${q ? `?${q}` : ''}`), 'visits');
    $('#visits-body').replaceChildren(...visits.map((v) => h('tr', { dataset: { visit: v.id } },
      h('td', {}, time(ms(v.created_at))),
      h('td', {}, v.patient_name || (v.patient_ref ? t('admin.patient_record', { ref: v.patient_ref }) : '—')), h('td', {}, roomName(v.room)),
      h('td', {}, v.physician_name || v.physician || '—'), h('td', { dataset: { outcome: v.outcome || v.state || '' } }, outcomeText(v.outcome || v.state)),
      h('td', {}, duration(v.wait_secs)), h('td', {}, duration(v.call_secs)))));
    if (!visits.length) $('#visits-body').append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, t('admin.no_visits'))));
  } catch (e) { toast(t('admin.failed', { what: t('admin.tab_visits'), message: e.message })); }
}

async function loadExperience() {
  if (!state.rooms.length) await loadRooms();
  const q = query($('#exp-form'));
  try {
    const x = await api('GET', `/api/experience${q ? `?${q}` : ''}`);
    const fig = (label, value) => h('div', { class: 'figure' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
    const pct = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * (v <= 1 ? 100 : 1))}%`);
    $('#exp-figures').replaceChildren(
      fig(t('fig.nps'), x.nps === null || x.nps === undefined ? '–' : String(Math.round(x.nps))),
      fig(t('fig.answers'), String(x.answers ?? 0)), fig(t('fig.visits'), String(x.visits ?? 0)),
      fig(t('fig.median_wait'), duration(x.median_wait_secs)), fig(t('fig.p90_wait'), duration(x.p90_wait_secs)),
      fig(t('fig.no_show_rate'), pct(x.no_show_rate)));
    $('#exp-nps').replaceChildren(npsGauge(typeof x.nps === 'number' ? x.nps : null));
    $('#exp-bars').replaceChildren(bars([
      { label: t('fig.promoters'), value: x.promoters || 0, color: '#176b2c' },
      { label: t('fig.passives'), value: x.passives || 0, color: '#8a4b00' },
      { label: t('fig.detractors'), value: x.detractors || 0, color: '#b3261e' },
    ], { label: t('fig.nps_label', { promoters: x.promoters || 0, passives: x.passives || 0, detractors: x.detractors || 0 }) }));
  } catch (e) { toast(t('admin.failed', { what: t('admin.tab_experience'), message: e.message })); }
}

document.addEventListener('DOMContentLoaded', async () => {
  const tabs = $$('[role=tab]');
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => selectTab(t));
    t.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!d) return;
      const next = tabs[(i + d + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
  $('#room-form').addEventListener('submit', saveRoom);
  $('#room-reset').addEventListener('click', resetRoomForm);
  $('#staff-form').addEventListener('submit', inviteStaff);
  $('#links-room').addEventListener('change', loadLinks);
  $('#link-form').addEventListener('submit', mintLink);
  $('#visits-form').addEventListener('submit', (e) => { e.preventDefault(); loadVisits(); });
  $('#exp-form').addEventListener('submit', (e) => { e.preventDefault(); loadExperience(); });
  $('#staff-copy').addEventListener('click', async () => toast(await copy($('#staff-url').textContent, $('#staff-url')) ? t('staff.copied') : t('staff.copy_by_hand')));
  $('#link-copy').addEventListener('click', async () => toast(await copy($('#link-url').textContent, $('#link-url')) ? t('staff.copied') : t('staff.copy_by_hand')));
  // The language changed: what the script wrote is written again (the open tab reloads).
  await staffLang(() => { relabelRoomForm(); selectTab($('[role=tab][aria-selected=true]')); });
  resetRoomForm();
  state.me = (await requireStaff('admin'))?.staff?.id || null;
  loadRooms();
});
