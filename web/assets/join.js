// The patient page: redeem the join link, confirm the date of birth when the link names a
// health record (so the doctor's record panel opens only for the real patient), check
// devices and network, wait, then the call, then the survey. Everything the patient reads
// comes from i18n/<lang>.json.

import { $, h, showOnly, clinicContact } from './ui.js';
import { api, ApiError } from './api.js';
import { t, tn, setLang, pickLang, apply, lang } from './i18n.js';
import { Signal } from './signal.js';
import { Mesh, CallView, getLocalMedia, micMeter, playTestSound, connectionCheck, mediaOf, tileBadges, devicePickers } from './call.js';
import { confirmDialog } from './dialog.js';

const code = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const storeKey = `examroom.join.${code}`;
const state = {
  // `join` is the server's answer as it came; `own` is what the patient said on this page
  // (name, reason, how the identity check ended), kept apart so neither is mistaken for the other.
  join: null, own: {}, token: null, checked: false, stage: 'loading', local: null, facing: 'user',
  signal: null, mesh: null, names: new Map(), stopMeter: null, check: null, roomStatus: null,
  surveyToken: null, unread: 0, pickers: [],
};
const view = new CallView({
  text: () => ({ ...badges(), videoOf: (name) => name }),
  onTile: (video) => state.pickers[0]?.applySpeaker(video),
});
const badges = () => ({ cameraOff: t('call.badge_camera_off'), muted: t('call.badge_muted') });
/** Our own tile's badges, and the same news to the physician's page. */
function showOwnMedia() {
  const media = mediaOf(state.local);
  tileBadges($('.self-view'), media, badges());
  state.mesh?.setMediaState(media);
}

const show = (stage) => { state.stage = stage; showOnly('.stage-section', `s-${stage}`); referralsAt(stage); };
const save = () => sessionStorage.setItem(storeKey, JSON.stringify({ join: state.join, own: state.own, token: state.token, checked: state.checked }));
const load = () => { try { return JSON.parse(sessionStorage.getItem(storeKey)); } catch { return null; } };

function deviceId() {
  let id = localStorage.getItem('examroom.device');
  if (!id) {
    id = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now();
    localStorage.setItem('examroom.device', id);
  }
  return id;
}

async function start() {
  const stored = load();
  await setLang(pickLang(stored?.join?.lang));
  if (stored?.join && stored.token) {
    Object.assign(state, { join: stored.join, own: stored.own || {}, token: stored.token, checked: stored.checked });
    if (state.checked) {
      // A reload during the visit: straight back in with the same token.
      await acquireMedia();
      connect();
      return;
    }
  } else {
    try {
      state.join = await api('POST', `/api/join/${encodeURIComponent(code)}`, { device: deviceId() });
      state.token = state.join.token;
      save();
    } catch (e) {
      return showError(e);
    }
  }
  await setLang(pickLang(state.join.lang));
  if (needsIdentity()) return showIdentity();
  welcome();
}

// --- identity: the date of birth, checked by the server against the clinic's record ----

const needsIdentity = () => {
  const id = state.join?.identity;
  // No tries left (reopened after too many wrong answers): the visit goes ahead without it.
  if (id?.required && !id.confirmed && id.attempts_left === 0 && !state.own.identity) state.own.identity = 'locked';
  return !!(id?.required && !id.confirmed && !state.own.confirmed && !state.own.identity);
};

function showIdentity() {
  const room = state.join.room || {};
  $('#brand').textContent = room.name || 'examroom';
  show('identity');
  $('#birth-date').focus();
}

async function confirmIdentity(ev) {
  ev.preventDefault();
  const value = $('#birth-date').value.trim();
  const error = $('#identity-error');
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) { error.textContent = t('identity.invalid'); $('#birth-date').focus(); return; }
  error.textContent = '';
  const submit = $('#identity-submit');
  submit.disabled = true;
  try {
    await api('POST', '/api/identity', { birth_date: value }, { bearer: state.token });
    state.own.confirmed = true;
  } catch (e) {
    if (e.code === 'identity_mismatch') {
      const n = e.body?.attempts_left;
      error.textContent = n === 1 ? t('identity.mismatch_one') : t('identity.mismatch', { n: n ?? '?' });
      $('#birth-date').focus();
      return;
    }
    if (e.code === 'invalid_field') { error.textContent = t('identity.invalid'); return; }
    if (e.code === 'identity_locked' || e.code === 'identity_unverifiable') {
      // The video visit goes ahead; the doctor's panel stays closed and they will check in the call.
      state.own.identity = e.code === 'identity_locked' ? 'locked' : 'unverifiable';
    } else {
      error.textContent = e.status === 0 ? t('error.network') : t('identity.unavailable');
      return;
    }
  } finally {
    submit.disabled = false;
  }
  save();
  welcome();
}

function showError(e) {
  const key = e instanceof ApiError && t(`error.${e.code}`) !== `error.${e.code}` ? `error.${e.code}` : 'error.generic';
  $('#error-text').textContent = t(key);
  $('#retry').hidden = !(e.code === 'network' || e.status >= 500 || !e.status);
  show('error');
  clinicContact($('#error-clinic'));
}

async function welcome() {
  const j = state.join;
  const room = j.room || {};
  $('#brand').textContent = room.name || 'examroom';
  const known = state.own.name || j.linked_name;
  $('#welcome-hello').textContent = known ? t('welcome.hello', { name: known }) : '';
  $('#welcome-room').textContent = t('welcome.room', { room: room.name || '' });
  const physician = j.physician_name || j.physician?.name;
  $('#welcome-physician').hidden = !physician;
  if (physician) $('#welcome-physician').textContent = t('welcome.physician', { physician });
  const settled = state.own.identity;
  $('#welcome-identity').hidden = !settled;
  if (settled) $('#welcome-identity').textContent = t(`identity.${settled}`);
  show('welcome');
  $('#start-check').focus();
  try {
    const st = await api('GET', `/api/rooms/${encodeURIComponent(room.id)}/status`, undefined, { bearer: state.token });
    state.roomStatus = st;
    if (st && st.open === false) {
      const when = st.opens_at ? ` ${t('welcome.opens_at', { time: new Date(st.opens_at).toLocaleString() })}` : '';
      $('#welcome-closed').textContent = t('welcome.closed', { message: st.message || '' }) + when;
      $('#welcome-closed').hidden = false;
    }
  } catch { /* opening hours are a courtesy; the server decides */ }
}

// --- device and connection check ---------------------------------------------------------

function deniedHelp() {
  const ua = navigator.userAgent;
  if (/Firefox\//.test(ua)) return t('check.denied_firefox');
  if (/Safari\//.test(ua) && !/Chrome|Chromium|Edg\//.test(ua)) return t('check.denied_safari');
  if (/Chrome|Chromium|Edg\//.test(ua)) return t('check.denied_chrome');
  return t('check.denied_other');
}

async function acquireMedia() {
  const { stream, error } = await getLocalMedia(state.facing);
  if (state.local) for (const tr of state.local.getTracks()) tr.stop();
  useStream(stream);
  state.mediaError = error;
  return { stream, error };
}

/** Our camera and microphone, now this stream: on every peer, in both previews. */
function useStream(stream) {
  state.local = stream;
  state.mesh?.setLocalStream(stream);
  $('#self').srcObject = stream;
  if (state.stage === 'check') $('#preview').srcObject = stream;
  if (state.stage === 'check' && stream) {
    // The meter follows the microphone picked.
    state.stopMeter?.();
    const bar = $('#mic-meter span');
    state.stopMeter = micMeter(stream, (v) => {
      bar.style.width = `${Math.round(v * 100)}%`;
      $('#mic-meter').setAttribute('aria-valuenow', String(Math.round(v * 100)));
    });
  }
  showOwnMedia();
  for (const p of state.pickers) p.refresh();
}

/** Camera, microphone and speaker pickers: on the check page and beside the call. */
function pickers(root, id) {
  return devicePickers(root, {
    id,
    text: { camera: t('devices.camera'), microphone: t('devices.microphone'), speaker: t('devices.speaker'), unnamed: (kind, n) => t(`devices.unnamed_${kind}`, { n }) },
    getStream: () => state.local,
    onStream: useStream,
    mediaElements: () => [...document.querySelectorAll('#remotes video')],
  });
}

async function runCheck() {
  show('check');
  const { stream, error } = await acquireMedia();
  const hasVideo = !!stream?.getVideoTracks().length;
  const hasAudio = !!stream?.getAudioTracks().length;
  const denied = error && (error.name === 'NotAllowedError' || error.name === 'SecurityError');
  $('#preview').srcObject = stream;
  if (!state.pickers.length) state.pickers = [pickers($('#check-devices'), 'check-dev'), pickers($('#call-device-pickers'), 'call-dev')];
  $('#denied').hidden = !denied;
  if (denied) $('#denied-help').textContent = deniedHelp();
  $('#cam-result').textContent = hasVideo ? t('check.camera_ok') : t('check.camera_missing');
  $('#mic-result').textContent = hasAudio ? t('check.mic_ok') : t('check.mic_missing');
  const j = state.join;
  // Always asked: the link's name may be someone else's (a parent joining for a child).
  $('#profile').hidden = false;
  if (!$('#p-name').value) $('#p-name').value = state.own.name || j.linked_name || '';
  for (const el of [$('#p-reason'), $('label[for=p-reason]')]) el.hidden = !!state.own.reason;
  if (!state.signal) connect();
  state.check = { hasVideo, hasAudio, net: null };
  // One check at a time: "check again" while one runs waits for it.
  if (!state.checkRun) state.checkRun = networkCheck().finally(() => { state.checkRun = null; });
}

async function networkCheck() {
  $('#net-result').textContent = t('check.checking');
  const sig = state.signal;
  for (let i = 0; i < 100 && !sig.welcomed; i++) await new Promise((r) => setTimeout(r, 50));
  // A real WebRTC connection to the server's check peer: round trip, loss and path.
  let check = { ok: false, rttMs: null, lossPct: null, path: null, error: 'not connected' };
  if (sig.welcomed) {
    check = await connectionCheck(sig);
    // The server runs a few checks at once; when it is busy, try once more.
    if (check.error === 'too_many_checks') {
      await new Promise((r) => setTimeout(r, 1500));
      check = await connectionCheck(sig);
    }
  }
  const rtt = check.ok ? check.rttMs : (sig.welcomed ? await sig.measureRtt() : null);
  const ms = rtt ?? '–';
  let text;
  if (check.ok && rtt < 150 && check.lossPct <= 5) text = t('check.network_good', { ms });
  else if (check.ok) text = t('check.network_ok', { ms });
  else text = t('check.network_limited');
  $('#net-result').textContent = text;
  if (state.check) state.check.net = { ...check, rtt };
}

function checkSummary() {
  const c = state.check || {};
  const n = c.net;
  const parts = [];
  parts.push(c.hasVideo ? 'camera' : 'no camera');
  parts.push(c.hasAudio ? 'microphone' : 'no microphone');
  if (n?.ok) {
    parts.push(`${n.rttMs} ms`);
    if (n.lossPct) parts.push(`${n.lossPct}% loss`);
    // ICE candidate types as the physician reads them: host/srflx/prflx reach us directly.
    const path = { host: 'direct', srflx: 'direct', prflx: 'direct', relay: 'relayed' }[n.path];
    if (path) parts.push(path);
  } else if (n) {
    parts.push(`network check failed${n.error ? ` (${n.error})` : ''}`);
  }
  return { ok: !!(c.hasAudio && n?.ok), summary: parts.join(', ').slice(0, 200) };
}

async function toWaiting(ev) {
  ev.preventDefault();
  const j = state.join;
  const name = $('#p-name').value.trim();
  const reason = $('#p-reason').value.trim();
  if (!name) {
    $('#profile-error').textContent = t('check.name_required');
    $('#p-name').focus();
    return;
  }
  $('#profile-error').textContent = '';
  const msg = { type: 'profile', name };
  if (!state.own.reason && reason) msg.reason = reason;
  state.signal.send(msg);
  state.own.name = name;
  if (msg.reason) state.own.reason = msg.reason;
  if (state.checkRun) await state.checkRun;
  if (!state.check?.net) await networkCheck();
  state.signal.send({ type: 'device_check', ...checkSummary() });
  state.checked = true;
  save();
  state.stopMeter?.();
  show('waiting');
  prepareCall();
  renderWaiting(state.lastWaiting);
  $('#waiting-h').focus?.();
}

// While the patient waits, their side of the call is made ready (Mesh.prepare, issue 20): the
// peer connection with the camera's tracks, adopted for the physician on `admitted`, so the
// answer to the physician's offer is quicker. Closed when they leave the waiting room.
function prepareCall() {
  if (state.checked && state.stage === 'waiting') state.mesh?.prepare({ onExpired: prepareCall });
}

// --- signalling ------------------------------------------------------------------------

function connect() {
  const signal = new Signal(() => state.token, {
    onState: (s) => {
      $('#conn').textContent = t(`status.${s}`);
      $('#conn').className = `badge ${s === 'connected' ? 'ok' : 'warn'}`;
      if (state.stage === 'call') {
        $('#call-banner').hidden = s === 'connected';
        $('#call-banner').textContent = t('call.reconnecting');
      }
    },
    onFatal: (code) => {
      if (['survey', 'done'].includes(state.stage)) return;
      if (code === 'visit_closed') return done('ended.heading', 'ended.text');
      done('ended.heading', t(`fatal.${code}`) === `fatal.${code}` ? 'fatal.generic' : `fatal.${code}`);
    },
    // Resume only while this page still holds its peer connections.
    canResume: () => true,
  });
  state.signal = signal;
  const mesh = new Mesh(signal, {
    onRemote: (id, stream, info) => view.addRemote(id, stream, info?.name || state.names.get(id) || ''),
    onRemoved: (id) => view.removeRemote(id),
    onMediaState: (id, media) => view.mediaState(id, media),
    onState: (id, s) => {
      if (s === 'reconnecting') view.banner(t('call.peer_reconnecting', { name: state.names.get(id) || '' }));
      else if (s === 'connected' || s === 'completed') view.banner(null);
    },
  });
  state.mesh = mesh;
  if (state.local) mesh.setLocalStream(state.local);

  signal.on('token', (m) => { state.token = m.token; save(); });
  signal.on('waiting', (m) => {
    state.lastWaiting = m;
    if (state.stage === 'call') { mesh.closeAll(); view.clearRemotes(); }
    if (state.checked && !['survey', 'done'].includes(state.stage)) { show('waiting'); prepareCall(); }
    renderWaiting(m);
  });
  signal.on('physician_message', (m) => {
    $('#physician-messages-wrap').hidden = false;
    $('#physician-messages').append(h('li', {}, m.text));
  });
  signal.on('preference_unavailable', () => notice(t('waiting.preference_unavailable')));
  signal.on('sent_back', () => { mesh.closeAll(); view.clearRemotes(); notice(t('waiting.sent_back')); show('waiting'); prepareCall(); });
  signal.on('admitted', async (m) => {
    state.checked = true; save();
    for (const p of m.peers) state.names.set(p.participant, p.name);
    if (!state.local) await acquireMedia();
    $('#self').srcObject = state.local;
    showOwnMedia();
    $('#call-with').textContent = t('call.with', { name: m.by || m.peers.map((p) => p.name).join(', ') });
    show('call');
    mesh.admitted(m.peers);
  });
  signal.on('peer_joined', (m) => state.names.set(m.peer.participant, m.peer.name));
  signal.on('chat', (m) => chatLine(m.name || state.names.get(m.from) || '', m.text));
  signal.on('chat_history', (m) => view.chatHistory(m.lines, signal.participant, t('chat.you')));
  signal.on('error', (m) => { if (m.code === 'chat_disabled') chatLine('', t('chat.disabled')); });
  signal.on('denied', (m) => { finish(); done('denied.heading', t('denied.text', { reason: m.reason || '' }), true); });
  signal.on('visit_ended', (m) => {
    state.surveyToken = state.token;
    finish();
    if (m.survey) { show('survey'); $('#survey-h').focus?.(); } else done('ended.heading', 'ended.text');
  });
  signal.connect();
}

function finish() {
  state.signal?.close();
  state.mesh?.closeAll();
  view.clearRemotes();
  if (state.local) for (const tr of state.local.getTracks()) tr.stop();
  state.stopMeter?.();
  sessionStorage.removeItem(storeKey);
}

function notice(text) {
  $('#waiting-notice').textContent = text;
  $('#waiting-notice').hidden = false;
}


function renderWaiting(m) {
  if (!m) return;
  $('#position').textContent = String(m.position);
  const ahead = m.position - 1;
  $('#position-text').textContent = ahead <= 0 ? t('waiting.next') : ahead === 1 ? t('waiting.ahead_one') : t('waiting.ahead', { n: ahead });
  // The room's message in the page's language, else its default (`waiting` has both).
  const room = state.join?.room;
  const message = m.messages?.[lang] || m.message || room?.waiting_messages?.[lang] || room?.waiting_message || '';
  $('#room-message').textContent = message;
}

function done(headingKey, textKey, literal = false) {
  show('done');
  $('#done-h').textContent = t(headingKey);
  $('#done-text').textContent = literal ? textKey : t(textKey);
}

// --- the call ---------------------------------------------------------------------------

function chatLine(from, text, mine = false) {
  view.chatLine(from, text);
  // On a phone the chat folds away over the video: count what arrives while it is folded.
  const toggle = $('#chat-toggle');
  if (!mine && toggle.offsetParent !== null && !$('#s-call').classList.contains('chat-open')) {
    state.unread += 1;
    renderUnread();
  }
}

function renderUnread() {
  const n = state.unread;
  $('#chat-unread').hidden = !n;
  $('#chat-unread').textContent = n ? String(n) : '';
  if (n) $('#chat-toggle').setAttribute('aria-label', tn('chat.unread', n));
  else $('#chat-toggle').removeAttribute('aria-label');
}

function toggleTrack(kind, button, onKey, offKey) {
  const tracks = state.local?.getTracks().filter((tr) => tr.kind === kind) || [];
  const off = button.getAttribute('aria-pressed') !== 'true';
  for (const tr of tracks) tr.enabled = !off;
  button.setAttribute('aria-pressed', String(off));
  button.textContent = t(off ? offKey : onKey);
  showOwnMedia();
}

async function switchCamera() {
  state.facing = state.facing === 'user' ? 'environment' : 'user';
  const old = state.local;
  const { stream } = await getLocalMedia(state.facing);
  if (!stream) return;
  useStream(stream);
  if (old) for (const tr of old.getTracks()) tr.stop();
}

async function qualityLoop() {
  if (state.stage === 'call' && state.mesh) {
    const q = await state.mesh.quality();
    $('#quality').dataset.level = String(q.level);
    const detail = q.rttMs !== null ? ` (${q.rttMs} ms)` : '';
    $('#quality-text').textContent = `${t('call.quality')}: ${t(`call.quality_${q.level}`)}${detail}`;
  }
  setTimeout(qualityLoop, 2000);
}

// --- survey -----------------------------------------------------------------------------

function buildScale() {
  const fs = $('#scale');
  for (let i = 0; i <= 10; i++) {
    fs.append(h('label', {}, h('input', { type: 'radio', name: 'score', value: String(i) }), h('span', {}, String(i))));
  }
}

async function submitSurvey(ev) {
  ev.preventDefault();
  const picked = document.querySelector('input[name=score]:checked');
  if (!picked) { $('#survey-error').textContent = t('survey.pick'); return; }
  const body = { score: Number(picked.value) };
  const comment = $('#survey-comment').value.trim();
  if (comment) body.comment = comment;
  const submit = $('#survey-form button[type=submit]');
  submit.disabled = true;
  try {
    // The visit history is written a moment after `visit_ended`: a 409 visit_not_ended
    // means "not yet"; try again a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        await api('POST', '/api/surveys', body, { bearer: state.surveyToken || state.token });
        break;
      } catch (e) {
        if (e.code === 'visit_not_ended' && attempt < 5) { await new Promise((r) => setTimeout(r, 1000)); continue; }
        if (e.status === 0) { $('#survey-error').textContent = t('error.network'); return; }
        // Already answered (409 conflict) or the token expired: thank them anyway.
        break;
      }
    }
  } finally {
    submit.disabled = false;
  }
  done('thanks.heading', 'thanks.text');
}

// --- referrals (issue 22) ----------------------------------------------------------------

// Where the physician referred the patient, shown once the visit is over (the survey, the
// last page, and the link opened again), and asked again every 15 s there: the physician
// usually refers after the call, and the other physician answers later.
const REFERRAL_STAGES = ['welcome', 'survey', 'done'];
const REFERRALS_EVERY_MS = 15000;

function referralsAt(stage) {
  renderReferrals();
  if (!REFERRAL_STAGES.includes(stage) || state.join?.kind === 'guest') return;
  loadReferrals();
  state.referralTimer ||= setInterval(loadReferrals, REFERRALS_EVERY_MS);
}

async function loadReferrals() {
  const token = state.surveyToken || state.token;
  const visit = state.join?.visit;
  if (!token || !visit || !REFERRAL_STAGES.includes(state.stage)) return;
  try {
    const list = await api('GET', `/api/visits/${encodeURIComponent(visit)}/referrals`, undefined, { bearer: token });
    // Only a change is written again: the list is a live region, read out when it changes.
    const seen = JSON.stringify(list);
    if (seen === state.referralsSeen) return;
    state.referralsSeen = seen;
    state.referrals = list;
    renderReferrals();
  } catch (e) {
    // The token ran out (the page stayed open long after the visit): stop asking; opening
    // the link again shows the referrals.
    if (e.status === 401 || e.status === 403) { clearInterval(state.referralTimer); }
  }
}

function referralItem(r) {
  const name = r.to_name || t('referrals.another_physician');
  const status = { pending: t('referrals.pending', { name }), accepted: t('referrals.accepted', { name }), declined: t('referrals.declined', { name }) }[r.status] || r.status;
  return h('li', { dataset: { referral: r.id, status: r.status } },
    h('h3', {}, t('referrals.to', { name })),
    h('p', {}, h('strong', {}, `${t('referrals.urgency')}: `), t(`referrals.urgency_${r.urgency}`)),
    h('p', {}, h('strong', {}, `${t('referrals.reason')}: `), r.reason),
    h('p', { class: `notice ${r.status === 'accepted' ? 'ok' : r.status === 'declined' ? 'warn' : ''} referral-status` }, status),
    h('div', { class: 'row' },
      r.join_url ? h('a', { class: 'button referral-join', href: r.join_url }, t('referrals.join', { name })) : null,
      r.book_url ? h('a', { class: `button${r.join_url ? ' secondary' : ''} referral-book`, href: r.book_url }, t('referrals.book', { name })) : null));
}

function renderReferrals() {
  const list = state.referrals || [];
  $('#referrals').hidden = !list.length || !REFERRAL_STAGES.includes(state.stage);
  $('#referrals-list').replaceChildren(...list.map(referralItem));
}

// --- wiring -----------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  apply();
  buildScale();
  $('#retry').addEventListener('click', () => location.reload());
  $('#identity-form').addEventListener('submit', confirmIdentity);
  $('#start-check').addEventListener('click', runCheck);
  $('#check-again').addEventListener('click', runCheck);
  $('#speaker-test').addEventListener('click', playTestSound);
  $('#profile-form').addEventListener('submit', toWaiting);
  $('#leave-waiting').addEventListener('click', async () => {
    if (await confirmDialog({ title: t('waiting.leave_confirm'), confirm: t('dialog.leave_waiting'), danger: true }) === null) return;
    state.signal?.send({ type: 'leave' });
    finish();
    done('ended.heading', 'left.text');
  });
  $('#leave-call').addEventListener('click', async () => {
    if (await confirmDialog({ title: t('call.leave_confirm'), confirm: t('dialog.leave_call'), danger: true }) === null) return;
    state.signal?.send({ type: 'leave' });
  });
  $('#mute').addEventListener('click', (e) => toggleTrack('audio', e.currentTarget, 'call.mute', 'call.unmute'));
  $('#camera').addEventListener('click', (e) => toggleTrack('video', e.currentTarget, 'call.camera_off', 'call.camera_on'));
  $('#switch-camera').addEventListener('click', switchCamera);
  // Phones: the call fills the screen and the chat opens over it (examroom.css).
  $('#chat-toggle').addEventListener('click', () => {
    const open = $('#s-call').classList.toggle('chat-open');
    $('#chat-toggle').setAttribute('aria-expanded', String(open));
    if (open) { state.unread = 0; renderUnread(); $('#chat-input').focus(); }
  });
  navigator.mediaDevices?.enumerateDevices?.().then((ds) => {
    $('#switch-camera').hidden = ds.filter((d) => d.kind === 'videoinput').length < 2;
  }).catch(() => {});
  $('#chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('#chat-input').value.trim();
    if (!text) return;
    if (state.signal?.send({ type: 'chat', text })) {
      chatLine(t('chat.you'), text, true);
      $('#chat-input').value = '';
    }
  });
  $('#survey-form').addEventListener('submit', submitSurvey);
  $('#survey-skip').addEventListener('click', () => done('thanks.heading', 'thanks.text'));
  qualityLoop();
  start();
});
