// The physician dashboard: live queues, admit/message/deny, join links, the call with the
// patient-record panel beside the video, and the physician's own figures.

import { $, h, toast, duration, copy, formData } from './ui.js';
import { api } from './api.js';
import { requireStaff } from './staff.js';
import { Signal } from './signal.js';
import { Mesh, getLocalMedia } from './call.js';
import { openRecord, closeRecord } from './record.js';

const state = { session: null, rooms: new Map(), queues: new Map(), visit: null, room: null, names: new Map(), local: null, signal: null, mesh: null };

async function main() {
  state.session = await requireStaff('physician');
  $('#availability-wrap').hidden = false;
  await loadRooms();
  connect();
  figures();
  setInterval(renderQueues, 15000);
  qualityLoop();
}

async function loadRooms() {
  try {
    const res = await api('GET', '/api/my/rooms');
    for (const r of res?.rooms || res || []) state.rooms.set(r.id, r);
  } catch (e) {
    toast(`Could not load your rooms: ${e.message}`);
  }
  renderRoomSelect();
  renderQueues();
}

function renderRoomSelect() {
  const sel = $('#link-room');
  const current = sel.value;
  sel.replaceChildren(...[...state.rooms.values()].map((r) => h('option', { value: r.id }, r.name || r.id)));
  if (current) sel.value = current;
}

// --- signalling -------------------------------------------------------------------------

function connect() {
  // No token: the HttpOnly session cookie comes with the WebSocket upgrade.
  const signal = new Signal(() => undefined, {
    onState: (s) => {
      $('#conn').textContent = s === 'connected' ? 'Live' : s === 'connecting' ? 'Connecting…' : 'Reconnecting…';
      $('#conn').className = `badge ${s === 'connected' ? 'ok' : 'warn'}`;
      if (state.visit) { $('#call-banner').hidden = s === 'connected'; $('#call-banner').textContent = 'Reconnecting…'; }
    },
    onFatal: (code, message) => { toast(`Disconnected: ${message || code}`); if (code === 'unauthenticated' || code === 'token_expired') location.reload(); },
    canResume: () => state.mesh && state.mesh.peers.size > 0,
  });
  state.signal = signal;
  state.mesh = new Mesh(signal, {
    onRemote: addRemote,
    onRemoved: (id) => document.getElementById(`remote-${id}`)?.remove(),
    onState: (id, s) => {
      const name = state.names.get(id) || 'The patient';
      if (s === 'reconnecting') banner(`${name} is reconnecting…`);
      else if (s === 'connected' || s === 'completed') banner(null);
    },
  });
  signal.on('welcome', (m) => {
    for (const id of m.rooms || []) if (!state.rooms.has(id)) state.rooms.set(id, { id, name: id });
    renderRoomSelect();
    signal.send({ type: 'availability', available: $('#available').checked });
  });
  signal.on('queue', (m) => {
    const r = state.rooms.get(m.room) || { id: m.room };
    r.name = m.room_name || r.name;
    state.rooms.set(m.room, r);
    state.queues.set(m.room, m.entries || []);
    renderRoomSelect();
    renderQueues();
  });
  signal.on('walk_in_offer', walkInOffer);
  signal.on('walk_in_withdrawn', (m) => document.getElementById(`offer-${m.visit}`)?.remove());
  signal.on('admitted', (m) => enterVisit(m));
  signal.on('peer_joined', (m) => { state.names.set(m.peer.participant, m.peer.name); toast(`${m.peer.name} joined`); });
  signal.on('peer_left', (m) => toast(`${state.names.get(m.participant) || 'A participant'} left`));
  signal.on('visit_ended', () => leaveVisit('The visit has ended.'));
  signal.on('chat', (m) => chatLine(m.name || state.names.get(m.from) || '', m.text));
  signal.on('error', (m) => { if (!['rate_limited'].includes(m.code)) toast(m.message || m.code); });
  signal.connect();
}

// --- the queue --------------------------------------------------------------------------

function renderQueues() {
  const root = $('#rooms');
  const focusId = document.activeElement?.id;
  root.replaceChildren();
  if (!state.rooms.size) root.append(h('p', { class: 'notice warn' }, 'You are not assigned to any room yet. Ask an admin to add you to one.'));
  for (const room of state.rooms.values()) {
    const entries = state.queues.get(room.id) || [];
    const sec = h('section', { class: 'card', 'aria-labelledby': `q-${room.id}` },
      h('h2', { id: `q-${room.id}` }, `${room.name || room.id} `, h('span', { class: 'badge muted' }, `${entries.length} waiting`)));
    if (!entries.length) sec.append(h('p', { class: 'muted' }, 'Nobody is waiting.'));
    const list = h('ul', { class: 'queue', 'aria-label': `Waiting in ${room.name || room.id}` });
    for (const e of entries) list.append(queueEntry(room, e));
    sec.append(list);
    root.append(sec);
  }
  if (focusId) document.getElementById(focusId)?.focus();
}

function queueEntry(room, e) {
  const waited = (Date.now() - e.waiting_since) / 1000;
  const device = e.device_ok === true ? h('span', { class: 'badge ok' }, `✓ ${e.device_summary || 'devices ok'}`)
    : e.device_ok === false ? h('span', { class: 'badge bad' }, `✗ ${e.device_summary || 'device problem'}`)
      : h('span', { class: 'badge muted' }, 'checking devices');
  const msgId = `msg-${e.visit}`;
  return h('li', { dataset: { visit: e.visit } },
    h('div', { class: 'row' },
      h('span', { class: 'who' }, `${e.position}. ${e.name || 'Unnamed patient'}`),
      e.connected === false ? h('span', { class: 'badge warn' }, 'disconnected') : null,
      e.lang ? h('span', { class: 'badge muted' }, e.lang) : null),
    e.reason ? h('p', {}, e.reason) : null,
    h('p', { class: 'muted' }, `Waiting ${duration(waited)} `, device),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: `admit-${e.visit}`, onclick: () => state.signal.send({ type: 'admit', room: room.id, visit: e.visit }) }, `Admit ${e.name || ''}`.trim()),
      h('button', { type: 'button', class: 'secondary', id: `deny-${e.visit}`, onclick: () => deny(room, e) }, 'Deny')),
    h('form', { class: 'row', onsubmit: (ev) => {
      ev.preventDefault();
      const input = document.getElementById(msgId);
      if (!input.value.trim()) return;
      state.signal.send({ type: 'message_patient', room: room.id, visit: e.visit, text: input.value.trim() });
      input.value = '';
      toast('Message sent');
    } },
    h('label', { for: msgId, class: 'visually-hidden' }, `Message to ${e.name || 'the patient'}`),
    h('input', { id: msgId, type: 'text', placeholder: 'e.g. running 5 minutes late', maxlength: 2000, style: 'flex:1' }),
    h('button', { type: 'submit', class: 'secondary small' }, 'Send message')));
}

function deny(room, e) {
  const reason = prompt(`Turn ${e.name || 'this patient'} away? Optionally say why (the patient sees this):`, '');
  if (reason === null) return;
  const msg = { type: 'deny', room: room.id, visit: e.visit };
  if (reason.trim()) msg.reason = reason.trim();
  state.signal.send(msg);
}

function walkInOffer(m) {
  const card = h('div', { class: 'notice warn', id: `offer-${m.visit}`, role: 'alert' },
    h('strong', {}, `Walk-in patient: ${m.name || 'unnamed'}`), m.reason ? ` — ${m.reason}` : '',
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => { state.signal.send({ type: 'walk_in_accept', room: m.room, visit: m.visit }); card.remove(); } }, 'Accept'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { state.signal.send({ type: 'walk_in_pass', room: m.room, visit: m.visit }); card.remove(); } }, 'Pass')));
  $('#walk-in-offers').append(card);
  setTimeout(() => card.remove(), Math.max(0, m.expires_at - Date.now()));
}

// --- the visit --------------------------------------------------------------------------

async function enterVisit(m) {
  const fresh = state.visit !== m.visit;
  state.visit = m.visit;
  state.room = m.room;
  for (const p of m.peers) state.names.set(p.participant, p.name);
  $('#lobby').hidden = true;
  $('#visit').hidden = false;
  const patient = m.peers.find((p) => p.role === 'patient');
  $('#visit-h').textContent = `Visit with ${patient?.name || m.peers.map((p) => p.name).join(', ') || 'patient'}`;
  if (!state.local) {
    const { stream, error } = await getLocalMedia();
    state.local = stream;
    if (error && !stream) toast('Camera and microphone are blocked: allow them in the browser to be seen and heard.');
  }
  state.mesh.setLocalStream(state.local);
  $('#self').srcObject = state.local;
  state.mesh.admitted(m.peers);
  if (fresh) {
    $('#chat-log').replaceChildren();
    $('#invite-out').hidden = true;
    state.record = openRecord($('#record'), m.visit);
  }
}

function leaveVisit(text) {
  state.mesh.closeAll();
  $('#remotes').replaceChildren();
  $('#stage-empty').hidden = false;
  state.visit = null;
  state.record = null;
  closeRecord($('#record'));
  $('#visit').hidden = true;
  $('#lobby').hidden = false;
  if (text) toast(text);
  figures();
}

function addRemote(id, stream, info) {
  let box = document.getElementById(`remote-${id}`);
  if (!box) {
    const name = info?.name || state.names.get(id) || '';
    box = h('div', { class: 'remote', id: `remote-${id}` }, h('video', { autoplay: true, playsinline: true, 'aria-label': `Video of ${name}` }), h('span', { class: 'who' }, name));
    $('#remotes').append(box);
  }
  const v = box.querySelector('video');
  if (v.srcObject !== stream) v.srcObject = stream;
  v.play?.().catch(() => {});
  $('#stage-empty').hidden = true;
}

function banner(text) {
  $('#call-banner').hidden = !text;
  if (text) $('#call-banner').textContent = text;
}

function chatLine(from, text) {
  const li = h('li', {}, h('span', { class: 'from' }, `${from}: `), text);
  $('#chat-log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

async function qualityLoop() {
  if (state.visit) {
    const q = await state.mesh.quality();
    $('#quality').dataset.level = String(q.level);
    $('#quality-text').textContent = `${['Connecting', 'Poor', 'Fair', 'Good'][q.level]}${q.rttMs !== null ? ` · ${q.rttMs} ms` : ''}${q.lossPct ? ` · ${q.lossPct}% loss` : ''}`;
  }
  setTimeout(qualityLoop, 2000);
}

async function figures() {
  const root = $('#my-figures');
  const from = Date.now() - 30 * 86400e3;
  try {
    const x = await api('GET', `/api/experience?physician=${encodeURIComponent(state.session.staff.id)}&from=${encodeURIComponent(from)}`);
    const fig = (label, value) => h('div', { class: 'figure' }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
    root.replaceChildren(
      fig('NPS', x.nps === null || x.nps === undefined ? '–' : String(Math.round(x.nps))),
      fig('Survey answers', String(x.answers ?? 0)),
      fig('Median wait', duration(x.median_wait_secs)),
      fig('90th percentile wait', duration(x.p90_wait_secs)),
      fig('Visits', String(x.visits ?? 0)));
  } catch (e) {
    root.replaceChildren(h('p', { class: 'muted' }, `Figures are not available (${e.message}).`));
  }
}

// --- wiring -----------------------------------------------------------------------------

function toggleTrack(kind, button, on, off) {
  const disable = button.getAttribute('aria-pressed') !== 'true';
  for (const tr of state.local?.getTracks().filter((x) => x.kind === kind) || []) tr.enabled = !disable;
  button.setAttribute('aria-pressed', String(disable));
  button.textContent = disable ? off : on;
}

document.addEventListener('DOMContentLoaded', () => {
  $('#available').addEventListener('change', (e) => state.signal?.send({ type: 'availability', available: e.target.checked }));
  $('#link-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#link-error').textContent = '';
    try {
      const link = await api('POST', '/api/links', formData(ev.target));
      const url = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
      $('#link-url').textContent = url;
      $('#link-out').hidden = false;
      $('#link-copy').focus();
    } catch (e) {
      $('#link-error').textContent = e.message;
    }
  });
  $('#link-copy').addEventListener('click', async () => toast(await copy($('#link-url').textContent, $('#link-url')) ? 'Link copied' : 'Press Ctrl+C to copy'));
  $('#invite-copy').addEventListener('click', async () => toast(await copy($('#invite-url').textContent, $('#invite-url')) ? 'Link copied' : 'Press Ctrl+C to copy'));
  $('#invite').addEventListener('click', async () => {
    try {
      const link = await api('POST', '/api/links/guest', { room: state.room, visit: state.visit });
      $('#invite-url').textContent = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
      $('#invite-out').hidden = false;
    } catch (e) { toast(`Could not create the invitation: ${e.message}`); }
  });
  $('#send-back').addEventListener('click', () => {
    state.signal.send({ type: 'send_back', room: state.room, visit: state.visit });
    leaveVisit('The patient is back in the waiting room.');
  });
  $('#end-visit').addEventListener('click', () => {
    if (!confirm('End this visit for everyone?')) return;
    state.signal.send({ type: 'end_visit', room: state.room, visit: state.visit });
  });
  $('#mute').addEventListener('click', (e) => toggleTrack('audio', e.currentTarget, 'Mute', 'Unmute'));
  $('#camera').addEventListener('click', (e) => toggleTrack('video', e.currentTarget, 'Camera off', 'Camera on'));
  $('#chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('#chat-input').value.trim();
    if (text && state.signal.send({ type: 'chat', text })) { chatLine('You', text); $('#chat-input').value = ''; }
  });
  main();
});
