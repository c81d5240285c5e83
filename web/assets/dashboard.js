// The physician dashboard: live queues, admit/message/deny, join links, the call with the
// patient-record panel beside the video, and the physician's own figures.

import { $, h, toast, duration, copy, formData, linkSummary, expiryText } from './ui.js';
import { api } from './api.js';
import { t, tn, staffLang } from './i18n.js';
import { confirmDialog } from './dialog.js';
import { requireStaff } from './staff.js';
import { Signal } from './signal.js';
import { Mesh, CallView, getLocalMedia, mediaOf, tileBadges, devicePickers, shareScreen } from './call.js';
import { openRecord, closeRecord } from './record.js';
import { offerNote } from './visit-note.js';
import { referForm, referralsCard } from './referrals.js';
import { myProfile } from './profile.js';

const state = { session: null, rooms: new Map(), queues: new Map(), visit: null, room: null, names: new Map(), local: null, signal: null, mesh: null, patients: new Map(), linkNames: new Map(), linksAsked: new Set(), seen: new Map() };
const view = new CallView({
  text: () => ({ cameraOff: t('dash.badge_camera_off'), muted: t('dash.badge_muted'), videoOf: (name) => t('dash.video_of', { name }) }),
  onTile: (video) => state.pickers?.applySpeaker(video),
});

async function main() {
  await staffLang(relabel);
  relabel();
  state.session = await requireStaff('physician');
  $('#availability-wrap').hidden = false;
  $('#chime').hidden = false;
  renderChime();
  renderNotify();
  await loadRooms();
  connect();
  figures();
  state.referrals = referralsCard();
  state.profile = myProfile(state.session.staff);
  setInterval(tickWaits, 1000);
  qualityLoop();
}

async function loadRooms() {
  try {
    const res = await api('GET', '/api/my/rooms');
    for (const r of res || []) state.rooms.set(r.id, r);
  } catch (e) {
    toast(t('dash.rooms_failed', { message: e.message }));
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
      state.conn = s;
      if (s !== 'connected') state.mesh?.dropSpare();
      renderConn();
      $('#conn').className = `badge ${s === 'connected' ? 'ok' : 'warn'}`;
      if (state.visit) { $('#call-banner').hidden = s === 'connected'; $('#call-banner').textContent = t('dash.reconnecting'); }
    },
    onFatal: (code, message) => { toast(t('dash.disconnected', { message: message || code })); if (code === 'unauthenticated' || code === 'token_expired') location.reload(); },
    canResume: () => state.mesh && state.mesh.peers.size > 0,
  });
  state.signal = signal;
  state.mesh = new Mesh(signal, {
    onRemote: (id, stream, info) => view.addRemote(id, stream, info?.name || state.names.get(id) || ''),
    onRemoved: (id) => view.removeRemote(id),
    onMediaState: (id, media) => view.mediaState(id, media),
    onState: (id, s) => {
      const name = state.names.get(id) || t('dash.the_patient');
      if (s === 'reconnecting') view.banner(t('dash.peer_reconnecting', { name }));
      else if (s === 'connected' || s === 'completed') view.banner(null);
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
    arrivals(r, m.entries || []);
    // Remembered past the queue: the entry is gone by the time the visit is admitted.
    for (const e of m.entries || []) state.patients.set(e.visit, patientNames(e));
    learnLinkNames(m.room, m.entries || []);
    renderRoomSelect();
    renderQueues();
    keepSpare();
  });
  signal.on('walk_in_offer', walkInOffer);
  signal.on('walk_in_withdrawn', (m) => { document.getElementById(`offer-${m.visit}`)?.remove(); keepSpare(); });
  signal.on('admitted', (m) => enterVisit(m));
  signal.on('peer_joined', (m) => { state.names.set(m.peer.participant, m.peer.name); toast(t('dash.peer_joined', { name: m.peer.name })); });
  signal.on('peer_left', (m) => toast(t('dash.peer_left', { name: state.names.get(m.participant) || t('dash.a_participant') })));
  signal.on('visit_ended', () => {
    // The note of the visit just ended, for the patient's record (issue 22): only when its
    // chart opened (a visit without a patient record has no record to write to).
    const visit = state.visit;
    const charted = !!state.record?.rec;
    leaveVisit(t('dash.visit_ended'));
    if (visit) afterVisit(visit, charted);
  });
  signal.on('chat', (m) => view.chatLine(m.name || state.names.get(m.from) || '', m.text));
  signal.on('chat_history', (m) => view.chatHistory(m.lines, signal.participant, t('dash.you')));
  signal.on('error', (m) => { if (!['rate_limited'].includes(m.code)) toast(m.message || m.code); });
  signal.connect();
}

// --- the queue --------------------------------------------------------------------------

/** The names a visit knows for its patient: the one they gave, and the one on the link. */
function patientNames(e) {
  return [...new Set([e.name, state.linkNames.get(e.visit)].filter((n) => n && n.trim()))];
}

/** The link's name when the patient gave another ("Sam Exampleton" on "Robin Exampleton"'s link). */
function otherLinkedName(e) {
  const linked = state.linkNames.get(e.visit);
  const norm = (n) => String(n || '').trim().toLowerCase();
  return linked && norm(linked) !== norm(e.name) ? linked : null;
}

/**
 * Which name each visit's link carries: the queue has the name the patient typed; the link
 * list (GET /api/links) the one it was made for. Asked again when an unknown visit waits.
 */
async function learnLinkNames(room, entries) {
  const unknown = entries.filter((e) => !state.linkNames.has(e.visit) && !state.linksAsked.has(e.visit));
  if (!unknown.length) return;
  for (const e of unknown) state.linksAsked.add(e.visit);
  try {
    const res = await api('GET', `/api/links?room=${encodeURIComponent(room)}`);
    for (const l of res || []) if (l.kind === 'patient') state.linkNames.set(l.visit, l.patient_name || null);
  } catch { /* the queue still shows the name the patient gave */ }
  for (const e of entries) state.patients.set(e.visit, patientNames(e));
  renderQueues();
}

function renderQueues() {
  const root = $('#rooms');
  const focusId = document.activeElement?.id;
  // What the physician was typing to a waiting patient survives the re-render.
  const typed = [...document.querySelectorAll('input[data-message-to]')].map((i) => [i.id, i.value]).filter(([, v]) => v);
  root.replaceChildren();
  if (!state.rooms.size) root.append(h('p', { class: 'notice warn' }, t('dash.no_rooms')));
  const side = [];
  let waiting = 0;
  for (const room of state.rooms.values()) {
    const entries = state.queues.get(room.id) || [];
    waiting += entries.length;
    const sec = h('section', { class: 'card', 'aria-labelledby': `q-${room.id}` },
      h('h2', { id: `q-${room.id}` }, `${room.name || room.id} `, h('span', { class: 'badge muted' }, tn('dash.n_waiting', entries.length))));
    if (!entries.length) sec.append(h('p', { class: 'muted' }, t('dash.nobody_waiting')));
    const list = h('ul', { class: 'queue', 'aria-label': t('dash.waiting_in', { room: room.name || room.id }) });
    for (const e of entries) list.append(queueEntry(room, e));
    sec.append(list);
    root.append(sec);
    // Beside the call: who waits, and a way to message them (admitting means leaving this call).
    if (entries.length) {
      side.push(h('h3', { class: 'side-room' }, room.name || room.id),
        h('ul', { class: 'side-queue', 'aria-label': t('dash.waiting_in', { room: room.name || room.id }) }, entries.map((e) => queueEntry(room, e, 'cq-'))));
    }
  }
  $('#call-queue-list').replaceChildren(...(side.length ? side : [h('p', { class: 'muted' }, t('dash.nobody_waiting'))]));
  $('#call-queue-count').textContent = tn('dash.n_waiting', waiting);
  document.title = `${waiting ? `(${waiting}) ` : ''}${t('dash.title')}`;
  for (const [id, value] of typed) { const el = document.getElementById(id); if (el) el.value = value; }
  if (focusId) document.getElementById(focusId)?.focus();
}

/** "0:35", "4:05", "1:02:05": a wait that visibly ticks. */
function clockDuration(secs) {
  const s = Math.max(0, Math.floor(secs));
  const mm = String(Math.floor((s % 3600) / 60)); const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}
const waitText = (since) => t('dash.waiting_for', { time: clockDuration((Date.now() - since) / 1000) });
function tickWaits() {
  for (const el of document.querySelectorAll('.wait[data-since]')) el.textContent = waitText(Number(el.dataset.since));
}

// --- arrivals: chime, desktop notification ------------------------------------------------

/** New visits in a room's queue (not the ones it had when this page first heard of it). */
function arrivals(room, entries) {
  const first = !state.seen.has(room.id);
  const seen = state.seen.get(room.id) || new Set();
  const fresh = entries.filter((e) => !seen.has(e.visit));
  for (const e of entries) seen.add(e.visit);
  state.seen.set(room.id, seen);
  if (first || !fresh.length) return;
  if (chimeOn()) chime();
  // No patient name: a desktop notification can be read by anyone passing the screen.
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      new Notification(t('dash.note_title'), { body: tn('dash.note_body', fresh.length, { room: room.name || t('dash.your_room') }), tag: `examroom-${room.id}` });
    } catch { /* some browsers allow notifications only from a service worker */ }
  }
}

const chimeOn = () => localStorage.getItem('examroom.chime') !== 'off';
let audio = null;
function chime() {
  try {
    audio ||= new AudioContext();
    audio.resume?.();
    const t0 = audio.currentTime;
    for (const [i, freq] of [660, 880].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t0 + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.15, t0 + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.18 + 0.3);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + i * 0.18);
      osc.stop(t0 + i * 0.18 + 0.32);
    }
  } catch { /* no audio output: the title and the list still say it */ }
}

function renderChime() {
  const on = chimeOn();
  $('#chime').setAttribute('aria-pressed', String(on));
  $('#chime').textContent = on ? t('dash.chime_on') : t('dash.chime_off');
}

function renderNotify() {
  $('#notify').hidden = !('Notification' in window) || Notification.permission !== 'default';
}

/** One waiting patient; `prefix` keeps ids apart in the list beside the call (no admit there). */
function queueEntry(room, e, prefix = '') {
  const device = e.device_ok === true ? h('span', { class: 'badge ok' }, `✓ ${e.device_summary || t('dash.devices_ok')}`)
    : e.device_ok === false ? h('span', { class: 'badge bad' }, `✗ ${e.device_summary || t('dash.device_problem')}`)
      : h('span', { class: 'badge muted' }, t('dash.checking_devices'));
  const msgId = `${prefix}msg-${e.visit}`;
  const side = prefix !== '';
  return h('li', { dataset: { visit: e.visit } },
    h('div', { class: 'row' },
      h('span', { class: 'who' }, `${e.position}. ${e.name || t('dash.unnamed')}`),
      otherLinkedName(e) ? h('span', { class: 'badge warn linked-name' }, t('dash.link_made_for', { name: otherLinkedName(e) })) : null,
      e.connected === false ? h('span', { class: 'badge warn' }, t('dash.disconnected_badge')) : null,
      e.lang ? h('span', { class: 'badge muted' }, e.lang) : null),
    e.reason ? h('p', {}, e.reason) : null,
    h('p', { class: 'muted' }, h('span', { class: 'wait', dataset: { since: String(e.waiting_since) } }, waitText(e.waiting_since)), ' ', device),
    side ? null : h('div', { class: 'row' },
      h('button', { type: 'button', id: `admit-${e.visit}`, onclick: () => { warmCall(); state.signal.send({ type: 'admit', room: room.id, visit: e.visit }); } }, e.name ? t('dash.admit_name', { name: e.name }) : t('dash.admit')),
      h('button', { type: 'button', class: 'secondary', id: `deny-${e.visit}`, onclick: () => deny(room, e) }, t('dash.deny'))),
    h('form', { class: 'row', onsubmit: (ev) => {
      ev.preventDefault();
      const input = document.getElementById(msgId);
      if (!input.value.trim()) return;
      state.signal.send({ type: 'message_patient', room: room.id, visit: e.visit, text: input.value.trim() });
      input.value = '';
      toast(t('dash.message_sent'));
    } },
    h('label', { for: msgId, class: 'visually-hidden' }, t('dash.message_to', { name: e.name || t('dash.the_patient_lc') })),
    h('input', { id: msgId, type: 'text', placeholder: t('dash.message_placeholder'), maxlength: 2000, class: 'grow', dataset: { messageTo: e.visit } }),
    h('button', { type: 'submit', class: 'secondary small' }, t('dash.send_message'))));
}

async function deny(room, e) {
  const answer = await confirmDialog({
    title: e.name ? t('dash.deny_title', { name: e.name }) : t('dash.deny_title_unnamed'),
    text: t('dash.deny_text'),
    input: t('dash.deny_reason'),
    confirm: t('dash.deny_confirm'),
    danger: true,
  });
  if (answer === null) return;
  const msg = { type: 'deny', room: room.id, visit: e.visit };
  if (answer.trim()) msg.reason = answer.trim();
  state.signal.send(msg);
}

function walkInOffer(m) {
  const card = h('div', { class: 'notice warn', id: `offer-${m.visit}`, role: 'alert' },
    h('strong', {}, t('dash.walk_in', { name: m.name || t('dash.unnamed') })), m.reason ? ` — ${m.reason}` : '',
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => { warmCall(); state.signal.send({ type: 'walk_in_accept', room: m.room, visit: m.visit }); card.remove(); } }, t('dash.accept')),
      h('button', { type: 'button', class: 'secondary', onclick: () => { state.signal.send({ type: 'walk_in_pass', room: m.room, visit: m.visit }); card.remove(); keepSpare(); } }, t('dash.pass'))));
  $('#walk-in-offers').append(card);
  keepSpare();
  setTimeout(() => { card.remove(); keepSpare(); }, Math.max(0, m.expires_at - Date.now()));
}

// --- the visit --------------------------------------------------------------------------

// While someone waits and the physician is in the lobby, a spare peer connection with its
// offer made is kept ready (Mesh.prepare, issue 20): on `admitted` the offer goes out at
// once instead of after Chromium's ~90 ms of making it. It holds no camera (the camera
// joins it by replaceTrack) and is closed when nobody waits, in a visit, and when unused
// for Mesh's SPARE_MAX_AGE_MS (then made again if still wanted).
function spareWanted() {
  if (state.visit || !state.mesh || state.conn !== 'connected') return false;
  const waiting = [...state.queues.values()].some((entries) => entries.length > 0);
  return waiting || !!$('#walk-in-offers').children.length;
}

function keepSpare() {
  if (spareWanted()) state.mesh.prepare({ offer: true, onExpired: keepSpare });
  else state.mesh?.dropSpare();
}

/** Admit or Accept clicked: the camera, and the connection if none is ready yet. */
function warmCall() {
  warmLocalMedia();
  if (!state.visit) state.mesh.prepare({ offer: true, onExpired: keepSpare });
}

// The camera starts as the physician clicks Admit, while the server answers: asked for only
// once `admitted` came, its start-up was added to the time until the call connects (issue 20).
// An admit that is refused or never answered must not leave the camera on: unused after
// 10 s, the warmed stream is stopped.
function warmLocalMedia() {
  if (state.local || state.localPending) return;
  const pending = getLocalMedia();
  state.localPending = pending;
  setTimeout(async () => {
    if (state.localPending !== pending) return;
    state.localPending = null;
    (await pending).stream?.getTracks().forEach((tr) => tr.stop());
  }, 10000);
}

async function enterVisit(m) {
  const fresh = state.visit !== m.visit;
  state.visit = m.visit;
  // Before any await: the visit's `chat_history` follows this message straight away.
  if (fresh) $('#chat-log').replaceChildren();
  state.room = m.room;
  for (const p of m.peers) state.names.set(p.participant, p.name);
  $('#lobby').hidden = true;
  $('#visit').hidden = false;
  // A new visit opens at its top, wherever the lobby was scrolled (the last visit's note
  // form above the queue can push the Admit button down).
  if (fresh) window.scrollTo(0, 0);
  const patient = m.peers.find((p) => p.role === 'patient');
  const known = state.patients.get(m.visit) || [];
  const given = known[0] || patient?.name;
  const linked = known.slice(1);
  state.heading = { given: given || m.peers.map((p) => p.name).join(', '), linked };
  renderHeading();
  // The spare's offer goes out now, before the camera is ready; a spare this visit cannot
  // take (we are the polite side) is closed. Everyone else is connected below.
  state.mesh.adoptSpare(m.peers);
  state.mesh.dropSpare();
  if (!state.local) {
    const { stream, error } = await (state.localPending || getLocalMedia());
    state.localPending = null;
    state.local = stream;
    if (error && !stream) toast(t('dash.media_blocked'));
  }
  state.mesh.setLocalStream(state.local);
  $('#self').srcObject = state.local;
  showOwnMedia();
  state.pickers ||= devicePickers($('#device-pickers'), {
    id: 'dev',
    text: { camera: t('devices.camera'), microphone: t('devices.microphone'), speaker: t('devices.speaker'), unnamed: (kind, n) => t(`devices.unnamed_${kind}`, { n }) },
    getStream: () => state.local,
    onStream: (stream) => {
      state.sharing?.stop();
      state.local = stream;
      state.mesh.setLocalStream(stream);
      $('#self').srcObject = stream;
      showOwnMedia();
    },
    mediaElements: () => [...document.querySelectorAll('#remotes video')],
  });
  state.pickers.refresh();
  state.mesh.admitted(m.peers);
  if (fresh) {
    $('#invite-out').hidden = true;
    state.record = openRecord($('#record'), m.visit, { patient: { names: known.length ? known : [patient?.name].filter((n) => n && n !== 'Patient') } });
    $('#refer-call').open = false;
    $('#refer-call-slot').replaceChildren(referral(m.visit, 'refer-call'));
  }
}

/** A form to refer this visit's patient (issue 22); `prefix` keeps the ids of two apart. */
function referral(visit, prefix) {
  return referForm({ visit, me: state.session.staff.id, prefix, onSent: () => state.referrals?.refresh() });
}

/**
 * After a visit: the note for the patient's record when its chart opened, with the
 * referral under it; without a chart only the referral.
 */
function afterVisit(visit, charted) {
  $('#visit-after')?.remove();
  const refer = h('details', { id: 'refer-after', class: 'devices' },
    h('summary', { dataset: { i18n: 'ref.refer_patient' } }, t('ref.refer_patient')), referral(visit, 'refer-after'));
  if (charted) { offerNote($('#lobby'), visit, { extra: refer }); return; }
  $('#visit-note')?.remove();
  const close = h('button', { type: 'button', class: 'secondary small' }, t('note.close'));
  const box = h('section', { id: 'visit-after', class: 'card visit-note', 'aria-labelledby': 'visit-after-h' },
    h('h2', { id: 'visit-after-h', dataset: { i18n: 'ref.after_visit' } }, t('ref.after_visit')), refer, h('div', { class: 'row' }, close));
  close.addEventListener('click', () => box.remove());
  $('#lobby').prepend(box);
}

function leaveVisit(text) {
  state.sharing?.stop();
  state.mesh.closeAll();
  view.clearRemotes();
  state.visit = null;
  state.record = null;
  closeRecord($('#record'));
  $('#visit').hidden = true;
  $('#lobby').hidden = false;
  if (text) toast(text);
  figures();
  keepSpare();
}

async function qualityLoop() {
  if (state.visit) {
    const q = await state.mesh.quality();
    $('#quality').dataset.level = String(q.level);
    $('#quality-text').textContent = `${t(`dash.quality_${q.level}`)}${q.rttMs !== null ? ` · ${q.rttMs} ms` : ''}${q.lossPct ? ` · ${t('dash.loss', { pct: q.lossPct })}` : ''}`;
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
      fig(t('fig.nps'), x.nps === null || x.nps === undefined ? '–' : String(Math.round(x.nps))),
      fig(t('fig.answers'), String(x.answers ?? 0)),
      fig(t('fig.median_wait'), duration(x.median_wait_secs)),
      fig(t('fig.p90_wait'), duration(x.p90_wait_secs)),
      fig(t('fig.visits'), String(x.visits ?? 0)));
  } catch (e) {
    root.replaceChildren(h('p', { class: 'muted' }, t('dash.figures_failed', { message: e.message })));
  }
}

// --- wiring -----------------------------------------------------------------------------

function toggleTrack(kind, button) {
  const disable = button.getAttribute('aria-pressed') !== 'true';
  for (const tr of state.local?.getTracks().filter((x) => x.kind === kind) || []) tr.enabled = !disable;
  button.setAttribute('aria-pressed', String(disable));
  renderTrackButtons();
  showOwnMedia();
}

/** Screen sharing: the patient sees the screen in place of the camera until it stops. */
async function toggleShare() {
  if (state.sharing) { state.sharing.stop(); return; }
  const sharing = await shareScreen(state.mesh, state.local, () => {
    state.sharing = null;
    $('#self').srcObject = state.local;
    renderShare();
    showOwnMedia();
  });
  if (!sharing) return;
  state.sharing = sharing;
  $('#self').srcObject = sharing.stream;
  renderShare();
  showOwnMedia();
}

function renderShare() {
  $('#share').setAttribute('aria-pressed', String(!!state.sharing));
  $('#share').textContent = state.sharing ? t('dash.share_stop') : t('dash.share');
  $('.self-view').classList.toggle('sharing', !!state.sharing);
}

function renderTrackButtons() {
  const off = (id) => $(id).getAttribute('aria-pressed') === 'true';
  $('#mute').textContent = off('#mute') ? t('dash.unmute') : t('dash.mute');
  $('#camera').textContent = off('#camera') ? t('dash.camera_on') : t('dash.camera_off');
}

function renderConn() {
  const s = state.conn;
  if (!s) return;
  $('#conn').textContent = s === 'connected' ? t('dash.live') : s === 'connecting' ? t('dash.connecting') : t('dash.reconnecting');
}

function renderHeading() {
  const { given, linked } = state.heading || {};
  $('#visit-h').textContent = linked?.length
    ? t('dash.visit_with_linked', { name: given || t('dash.the_patient_lc'), linked: linked.join(', ') })
    : t('dash.visit_with', { name: given || t('dash.the_patient_lc') });
}

/** The language changed: everything this script wrote is written again. */
function relabel() {
  renderConn();
  renderChime();
  renderTrackButtons();
  renderShare();
  if (state.heading) renderHeading();
  $('#quality-text').textContent = t('dash.quality_0');
  if (state.session) { renderQueues(); figures(); showOwnMedia(); }
  view.relabel();
  state.record?.relabel();
  state.referrals?.relabel();
  state.profile?.relabel();
}

const BADGES = { get cameraOff() { return t('dash.badge_camera_off'); }, get muted() { return t('dash.badge_muted'); } };
/** Our own tile's badges, and the same news to the patient's page. */
function showOwnMedia() {
  const media = mediaOf(state.sharing?.stream || state.local);
  tileBadges($('.self-view'), media, BADGES);
  state.mesh?.setMediaState(media);
}

document.addEventListener('DOMContentLoaded', () => {
  $('#available').addEventListener('change', (e) => state.signal?.send({ type: 'availability', available: e.target.checked }));
  $('#chime').addEventListener('click', () => {
    localStorage.setItem('examroom.chime', chimeOn() ? 'off' : 'on');
    renderChime();
  });
  $('#notify').addEventListener('click', async () => {
    try { await Notification.requestPermission(); } catch { /* refused */ }
    renderNotify();
  });
  $('#link-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#link-error').textContent = '';
    try {
      const body = formData(ev.target);
      const link = await api('POST', '/api/links', body);
      const url = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
      $('#link-url').textContent = url;
      $('#link-for').textContent = linkSummary(body, state.rooms.get(body.room)?.name);
      $('#link-expiry').textContent = expiryText(link.expires_at);
      $('#link-out').hidden = false;
      // The next link starts empty: the last patient's name or record must not ride along.
      for (const id of ['#link-name', '#link-ref', '#link-reason']) $(id).value = '';
      $('#link-lang').value = '';
      $('#link-copy').focus();
    } catch (e) {
      $('#link-error').textContent = e.message;
    }
  });
  $('#link-copy').addEventListener('click', async () => toast(await copy($('#link-url').textContent, $('#link-url')) ? t('staff.copied') : t('staff.copy_by_hand')));
  $('#invite-copy').addEventListener('click', async () => toast(await copy($('#invite-url').textContent, $('#invite-url')) ? t('staff.copied') : t('staff.copy_by_hand')));
  $('#invite').addEventListener('click', async () => {
    try {
      const link = await api('POST', '/api/links/guest', { room: state.room, visit: state.visit });
      $('#invite-url').textContent = link.url?.startsWith('http') ? link.url : new URL(link.url || `/join/${link.code}`, location.origin).href;
      $('#invite-expiry').textContent = expiryText(link.expires_at);
      $('#invite-out').hidden = false;
    } catch (e) { toast(t('dash.invite_failed', { message: e.message })); }
  });
  $('#send-back').addEventListener('click', () => {
    state.signal.send({ type: 'send_back', room: state.room, visit: state.visit });
    leaveVisit(t('dash.sent_back'));
  });
  $('#end-visit').addEventListener('click', async () => {
    const ok = await confirmDialog({ title: t('dash.end_title'), text: t('dash.end_text'), confirm: t('dash.end_visit'), danger: true });
    if (ok === null) return;
    state.signal.send({ type: 'end_visit', room: state.room, visit: state.visit });
  });
  $('#share').addEventListener('click', toggleShare);
  $('#share').hidden = !navigator.mediaDevices?.getDisplayMedia;
  $('#mute').addEventListener('click', (e) => toggleTrack('audio', e.currentTarget));
  $('#camera').addEventListener('click', (e) => toggleTrack('video', e.currentTarget));
  $('#chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('#chat-input').value.trim();
    if (text && state.signal.send({ type: 'chat', text })) { view.chatLine(t('dash.you'), text); $('#chat-input').value = ''; }
  });
  main();
});
