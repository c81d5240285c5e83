// The admin console: rooms, staff, links, visit history with CSV, patient-experience charts.
import { $, $$, h, toast, duration, time, linkSummary } from './ui.js';
import { api } from './api.js';
import { requireStaff } from './staff.js';
import { bars, npsGauge } from './charts.js';

const state = { rooms: [], staff: [] };
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
  try { state.rooms = list(await api('GET', '/api/rooms'), 'rooms'); } catch (e) { toast(`Rooms: ${e.message}`); }
  try { state.staff = list(await api('GET', '/api/staff'), 'staff'); } catch { /* shown under Staff */ }
  const name = (id) => state.staff.find((s) => s.id === id)?.name || id;
  $('#rooms-body').replaceChildren(...state.rooms.map((r) => h('tr', {},
    h('td', {}, r.name), h('td', {}, r.kind === 'walk_in' ? 'Walk-in' : 'Physician'),
    h('td', {}, (r.physicians || []).map(name).join(', ') || '—'), h('td', {}, r.chat_allowed === false ? 'No' : 'Yes'),
    h('td', {}, h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary small', onclick: () => editRoom(r) }, `Edit ${r.name}`),
      h('button', { type: 'button', class: 'danger small', onclick: () => archiveRoom(r) }, `Archive ${r.name}`))))));
  if (!state.rooms.length) $('#rooms-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No rooms yet: create the first one below.')));
  renderPhysicianChoices();
  for (const sel of ['#links-room', '#visits-room', '#exp-room']) {
    const el = $(sel);
    const keep = el.value;
    const opts = state.rooms.map((r) => h('option', { value: r.id }, r.name));
    el.replaceChildren(...(sel === '#links-room' ? [] : [h('option', { value: '' }, 'All rooms')]), ...opts);
    el.value = keep || el.options[0]?.value || '';
  }
}

function renderPhysicianChoices(selected = []) {
  const fs = $('#room-physicians');
  const docs = state.staff.filter((s) => (s.roles || []).includes('physician'));
  fs.replaceChildren(h('legend', {}, 'Physicians'));
  if (!docs.length) fs.append(h('p', { class: 'muted' }, 'Invite physicians under Staff first.'));
  for (const d of docs) {
    fs.append(h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'physicians', value: d.id, checked: selected.includes(d.id) }), d.name || d.email));
  }
}

function editRoom(r) {
  $('#room-form-h').textContent = `Edit ${r.name}`;
  $('#room-save').textContent = 'Save room';
  $('#room-id').value = r.id;
  $('#room-name').value = r.name || '';
  $('#room-kind').value = r.kind || 'physician';
  $('#room-message').value = r.waiting_message || '';
  $('#room-max-wait').value = r.max_wait_secs ?? 1800;
  $('#room-hours').value = r.opening_hours || '';
  $('#room-max-participants').value = r.max_participants ?? 4;
  $('#room-chat').checked = r.chat_allowed !== false;
  $('#room-invites').checked = r.invites_allowed !== false;
  renderPhysicianChoices(r.physicians || []);
  $('#room-name').focus();
}

function resetRoomForm() {
  $('#room-form').reset();
  $('#room-id').value = '';
  $('#room-form-h').textContent = 'New room';
  $('#room-save').textContent = 'Create room';
  renderPhysicianChoices();
}

async function saveRoom(ev) {
  ev.preventDefault();
  $('#room-error').textContent = '';
  const body = {
    name: $('#room-name').value.trim(),
    kind: $('#room-kind').value,
    physicians: $$('input[name=physicians]:checked').map((c) => c.value),
    waiting_message: $('#room-message').value.trim(),
    max_wait_secs: Number($('#room-max-wait').value) || 1800,
    max_participants: Number($('#room-max-participants').value) || 4,
    chat_allowed: $('#room-chat').checked,
    invites_allowed: $('#room-invites').checked,
    opening_hours: $('#room-hours').value.trim() || null,
  };
  if (!body.name) { $('#room-error').textContent = 'A room needs a name.'; return; }
  const id = $('#room-id').value;
  try {
    if (id) await api('PUT', `/api/rooms/${encodeURIComponent(id)}`, body);
    else await api('POST', '/api/rooms', body);
    toast(id ? 'Room saved' : 'Room created');
    resetRoomForm();
    loadRooms();
  } catch (e) { $('#room-error').textContent = e.message; }
}

async function archiveRoom(r) {
  if (!confirm(`Archive ${r.name}? Its links stop working.`)) return;
  try { await api('DELETE', `/api/rooms/${encodeURIComponent(r.id)}`); loadRooms(); } catch (e) { toast(e.message); }
}

// --- staff ------------------------------------------------------------------------------
async function loadStaff() {
  try { state.staff = list(await api('GET', '/api/staff'), 'staff'); } catch (e) { toast(`Staff: ${e.message}`); }
  $('#staff-body').replaceChildren(...state.staff.map((s) => h('tr', {},
    h('td', {}, s.name), h('td', {}, s.email), h('td', {}, (s.roles || []).join(', '), s.active === false ? ' (deactivated)' : ''),
    h('td', {}, h('button', { type: 'button', class: 'secondary small', onclick: () => resetStaff(s) }, `Password reset link for ${s.name}`)))));
}

function showUrl(url) {
  $('#staff-url').textContent = url?.startsWith('http') ? url : new URL(url, location.origin).href;
  $('#staff-out').hidden = false;
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
    showUrl(res.invitation_url);
    $('#staff-form').reset();
    loadStaff();
  } catch (e) { $('#staff-error').textContent = e.message; }
}

async function resetStaff(s) {
  try {
    const res = await api('POST', `/api/staff/${encodeURIComponent(s.id)}/reset`);
    showUrl(res.invitation_url || res.reset_url || res.url);
  } catch (e) { toast(e.message); }
}

// --- links ------------------------------------------------------------------------------
async function loadLinks() {
  const room = $('#links-room').value;
  if (!room) { if (!state.rooms.length) await loadRooms(); if (!$('#links-room').value) return; }
  try {
    const links = list(await api('GET', `/api/links?room=${encodeURIComponent($('#links-room').value)}`), 'links');
    $('#links-body').replaceChildren(...links.map((l) => {
      const status = l.revoked || l.revoked_at ? 'Revoked' : l.used || l.used_at ? 'Used' : ms(l.expires_at) && ms(l.expires_at) < Date.now() ? 'Expired' : 'Open';
      return h('tr', {}, h('td', {}, l.patient_name || (l.kind === 'guest' ? 'Guest' : '—')), h('td', {}, time(ms(l.created_at))), h('td', {}, time(ms(l.expires_at))), h('td', {}, status),
        h('td', {}, status === 'Open' || status === 'Used' ? h('button', { type: 'button', class: 'danger small', onclick: async () => { await api('DELETE', `/api/links/${encodeURIComponent(l.id)}`).catch((e) => toast(e.message)); loadLinks(); } }, 'Revoke') : ''));
    }));
    if (!links.length) $('#links-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No links for this room.')));
  } catch (e) { toast(`Links: ${e.message}`); }
}

async function mintLink(ev) {
  ev.preventDefault();
  $('#link-error').textContent = '';
  const room = $('#links-room').value;
  if (!room) { $('#link-error').textContent = 'Choose a room first.'; return; }
  const body = { room };
  for (const [k, v] of new FormData(ev.target).entries()) if (String(v).trim()) body[k] = String(v).trim();
  try {
    const link = await api('POST', '/api/links', body);
    $('#link-url').textContent = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
    $('#link-for').textContent = linkSummary(body, $('#links-room').selectedOptions[0]?.textContent);
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
    if (!rows.length) $('#emergency-body').append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'None.')));
  } catch (e) { toast(`Emergency accesses: ${e.message}`); }
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
const OUTCOMES = { waiting: 'Waiting', admitted: 'Admitted', in_call: 'In call', ended: 'Seen', denied: 'Turned away', left: 'Left before being seen', no_show: 'No show' };
const outcomeText = (code) => (code ? OUTCOMES[code] || String(code).replace(/_/g, ' ') : '—');

async function loadVisits() {
  if (!state.rooms.length) await loadRooms();
  const q = query($('#visits-form'));
  $('#visits-csv').href = `/api/visits.csv${q ? `?${q}` : ''}`;
  const roomName = (id) => state.rooms.find((r) => r.id === id)?.name || id;
  try {
    const visits = list(await api('GET', `/api/visits${q ? `?${q}` : ''}`), 'visits');
    $('#visits-body').replaceChildren(...visits.map((v) => h('tr', { dataset: { visit: v.id || v.visit } },
      h('td', {}, time(ms(v.started_at || v.created_at || v.waiting_since))), h('td', {}, roomName(v.room)),
      h('td', {}, v.physician_name || v.physician || '—'), h('td', { dataset: { outcome: v.outcome || v.state || '' } }, outcomeText(v.outcome || v.state)),
      h('td', {}, duration(v.wait_secs)), h('td', {}, duration(v.call_secs ?? v.duration_secs)))));
    if (!visits.length) $('#visits-body').append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No visits in this period.')));
  } catch (e) { toast(`Visits: ${e.message}`); }
}

async function loadExperience() {
  if (!state.rooms.length) await loadRooms();
  const q = query($('#exp-form'));
  try {
    const x = await api('GET', `/api/experience${q ? `?${q}` : ''}`);
    const fig = (label, value) => h('div', { class: 'figure' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
    const pct = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * (v <= 1 ? 100 : 1))}%`);
    $('#exp-figures').replaceChildren(
      fig('NPS', x.nps === null || x.nps === undefined ? '–' : String(Math.round(x.nps))),
      fig('Survey answers', String(x.answers ?? 0)), fig('Visits', String(x.visits ?? 0)),
      fig('Median wait', duration(x.median_wait_secs)), fig('90th percentile wait', duration(x.p90_wait_secs)),
      fig('No-show rate', pct(x.no_show_rate)));
    $('#exp-nps').replaceChildren(npsGauge(typeof x.nps === 'number' ? x.nps : null));
    $('#exp-bars').replaceChildren(bars([
      { label: 'Promoters (9–10)', value: x.promoters || 0, color: '#176b2c' },
      { label: 'Passives (7–8)', value: x.passives || 0, color: '#8a4b00' },
      { label: 'Detractors (0–6)', value: x.detractors || 0, color: '#b3261e' },
    ], { label: `Promoters ${x.promoters || 0}, passives ${x.passives || 0}, detractors ${x.detractors || 0}` }));
  } catch (e) { toast(`Experience: ${e.message}`); }
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
  await requireStaff('admin');
  loadRooms();
});
