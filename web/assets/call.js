// The call: one RTCPeerConnection per peer (a mesh of up to 4), each negotiated with the
// *perfect negotiation* pattern. The server tells each side whether it is `polite` towards
// a peer; the polite side yields on offer collisions.
//
// A new connection is opened by the impolite side alone: both sides build theirs at the same
// moment (`admitted` / `peer_joined`), and if both offered, the polite side would have to roll
// its offer back while that offer's ICE gathering is under way. Chromium then sometimes never
// gathers for the answer (no local candidates, ICE stays "new"): the call after a patient's
// reload did not connect in about a third of tries on a busy machine. So the polite side
// answers the first offer and only offers itself if none came within FIRST_OFFER_WAIT_MS
// (a peer that kept an old connection and will not offer); after the first exchange both
// sides renegotiate as perfect negotiation says.
//
// - `admitted.peers[]`       build a connection to each peer not already connected
// - `peer_joined.peer`       they came back on a fresh page: rebuild the connection
// - `peer_left`              close it
// - `peer_resumed`           their network came back: restart ICE (impolite side offers)
// - `peer_reconnecting`      show it; keep the connection
// - `media_state`            the peer's microphone/camera are on or off (badges on its tile);
//                            ours goes to each peer when it connects and when we toggle
//
// A connection can be made before its peer is known (`Mesh.prepare`, issue 20): creating the
// RTCPeerConnection, its transceivers and an offer takes Chromium most of the time from the
// physician's Admit to connected. The physician's dashboard keeps one *spare* that has made
// its offer (and gathered its candidates) while patients wait; on `admitted` it is adopted
// for the patient and its offer goes out at once, the camera joining by replaceTrack. The
// rule above holds: a spare that offered is adopted only for a peer towards which we are
// impolite (the side that offers first anyway); otherwise the usual connection is built.
// The waiting patient's page keeps a spare that has not offered (tracks added, certificate
// made), adopted for whichever peer comes first and then negotiated as a fresh one. What a
// spare would send is held until it is adopted; one that is not adopted is closed.

/** How long the polite side waits for the first offer before making one itself. */
export const FIRST_OFFER_WAIT_MS = 4000;

/**
 * How long a spare connection is kept before it is replaced: its candidates and the TURN
 * credential it was made with age (a changed network, an expired credential).
 */
export const SPARE_MAX_AGE_MS = 120000;

export class Mesh {
  /**
   * @param {Signal} signal
   * @param {object} hooks { onRemote(peerId, stream, info), onRemoved(peerId), onState(peerId, state),
   *   onMediaState(peerId, {audio, video}) }
   */
  constructor(signal, hooks = {}) {
    this.signal = signal;
    this.hooks = hooks;
    this.peers = new Map();
    /** A connection made before its peer is known (see the top of this file), or null. */
    this.spare = null;
    this.localStream = null;
    this.media = { audio: true, video: true };
    signal.on('media_state', (m) => this.hooks.onMediaState?.(m.from, { audio: !!m.audio, video: !!m.video }));
    signal.on('offer', (m) => this.peer(m.from)?.description('offer', m.sdp));
    signal.on('answer', (m) => this.peer(m.from)?.description('answer', m.sdp));
    signal.on('candidate', (m) => this.peer(m.from)?.candidate(m.candidate));
    signal.on('end_of_candidates', (m) => this.peer(m.from)?.candidate(null));
    signal.on('peer_joined', (m) => this.rebuild(m.peer));
    signal.on('peer_left', (m) => this.remove(m.participant));
    signal.on('peer_resumed', (m) => this.peer(m.participant)?.restartIce());
    signal.on('peer_reconnecting', (m) => this.hooks.onState?.(m.participant, 'reconnecting'));
  }

  peer(id) { return this.peers.get(id); }

  setLocalStream(stream) {
    this.localStream = stream;
    for (const p of this.peers.values()) p.replaceLocal(stream);
    this.spare?.replaceLocal(stream);
  }

  /**
   * Keep a spare connection ready for the next peer; `offer`: make its offer (and gather)
   * now. `onExpired()` runs when it is closed after SPARE_MAX_AGE_MS unused, so the page can
   * make another if it still wants one.
   */
  prepare({ offer = false, onExpired } = {}) {
    const have = this.spare;
    if (have && !have.closed && have.offerEarly === offer) return;
    this.dropSpare();
    const spare = new Peer(this, null, { offerEarly: offer });
    this.spare = spare;
    spare.expiry = setTimeout(() => {
      if (this.spare !== spare) return;
      this.dropSpare();
      onExpired?.();
    }, SPARE_MAX_AGE_MS);
  }

  dropSpare() {
    const spare = this.spare;
    this.spare = null;
    if (spare) { clearTimeout(spare.expiry); spare.close(); }
  }

  /**
   * The spare for the first of `peers` we hold no connection to, if it may be theirs; null
   * otherwise. A spare that offered is only for a peer we are impolite towards.
   */
  adoptSpare(peers) {
    const spare = this.spare;
    if (!spare || spare.closed) return null;
    const info = peers.find((p) => { const have = this.peers.get(p.participant); return !have || have.closed; });
    if (!info || (spare.offerEarly && info.polite)) return null;
    this.spare = null;
    clearTimeout(spare.expiry);
    this.remove(info.participant, true);
    spare.adopt(info);
    this.peers.set(info.participant, spare);
    this.tellMedia(info.participant);
    return spare;
  }

  /** `admitted`: connect to every peer we do not hold yet (after a resume we hold them). */
  admitted(peers) {
    const wanted = new Set(peers.map((p) => p.participant));
    for (const id of [...this.peers.keys()]) if (!wanted.has(id)) this.remove(id);
    for (const info of peers) {
      const have = this.peers.get(info.participant);
      if (!have || have.closed || have.info.polite !== info.polite) this.rebuild(info);
    }
  }

  rebuild(info) {
    const spare = this.adoptSpare([info]);
    if (spare) return spare;
    this.remove(info.participant, true);
    const p = new Peer(this, info);
    this.peers.set(info.participant, p);
    this.tellMedia(info.participant);
    return p;
  }

  /** Our microphone/camera went on or off: tell every peer (they show a badge). */
  setMediaState(media) {
    this.media = { audio: !!media.audio, video: !!media.video };
    for (const id of this.peers.keys()) this.tellMedia(id);
  }

  tellMedia(id) {
    this.signal.send({ type: 'media_state', to: id, ...this.media });
  }

  remove(id, quiet = false) {
    const p = this.peers.get(id);
    if (!p) return;
    p.close();
    this.peers.delete(id);
    if (!quiet) this.hooks.onRemoved?.(id);
  }

  /** Every connection, the spare too. */
  closeAll() {
    for (const id of [...this.peers.keys()]) this.remove(id);
    this.dropSpare();
  }

  /** A rough quality level 0–3 from every peer's stats, plus the numbers it came from. */
  async quality() {
    let worst = null;
    for (const p of this.peers.values()) {
      const q = await p.quality();
      if (!worst || q.level < worst.level) worst = q;
    }
    return worst || { level: 0, rttMs: null, lossPct: null, bytesReceived: 0, state: 'none' };
  }
}

class Peer {
  /**
   * `info` null: a spare, for a peer not known yet (`adopt` names it); `offerEarly`: it makes
   * its offer before that.
   */
  constructor(mesh, info, { offerEarly = false } = {}) {
    this.mesh = mesh;
    this.info = info;
    this.id = info ? info.participant : null;
    this.polite = !!info?.polite;
    this.offerEarly = offerEarly;
    // What a spare would send, in order, until it is adopted.
    this.held = info ? null : [];
    // A spare that needs negotiating but does not offer early: done on adoption.
    this.negotiationPending = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.closed = false;
    // Whether a remote description was ever applied: until then the polite side waits.
    this.negotiated = false;
    this.firstOfferTimer = null;
    this.lastBytes = 0;
    this.lastStatsAt = 0;
    this.remoteStream = new MediaStream();
    this.senders = [];
    const pc = new RTCPeerConnection({ iceServers: mesh.signal.iceServers || [] });
    this.pc = pc;
    this.send = (msg) => {
      if (this.closed) return;
      if (this.held) this.held.push(msg);
      else mesh.signal.send({ ...msg, to: this.id });
    };

    pc.onnegotiationneeded = () => this.negotiationNeeded();
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) this.send({ type: 'candidate', candidate: candidateInit(candidate) });
      else if (!candidate) this.send({ type: 'end_of_candidates' });
    };
    pc.ontrack = ({ track }) => {
      if (!this.id) return;
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      track.onunmute = () => mesh.hooks.onRemote?.(this.id, this.remoteStream, this.info);
      mesh.hooks.onRemote?.(this.id, this.remoteStream, this.info);
    };
    pc.oniceconnectionstatechange = () => {
      if (!this.id) return;
      const s = pc.iceConnectionState;
      mesh.hooks.onState?.(this.id, s);
      // A failed path: the impolite side restarts ICE; the polite side waits for its offer.
      if (s === 'failed' && !this.polite) pc.restartIce();
    };
    this.replaceLocal(mesh.localStream);
  }

  negotiationNeeded() {
    if (this.closed) return;
    if (!this.id) {
      if (this.offerEarly) this.offer();
      else this.negotiationPending = true;
      return;
    }
    if (this.polite && !this.negotiated) {
      // The impolite side's first offer is on its way (see the top of this file).
      if (!this.firstOfferTimer) {
        this.firstOfferTimer = setTimeout(() => {
          if (!this.closed && !this.negotiated && this.pc.signalingState === 'stable') this.offer();
        }, FIRST_OFFER_WAIT_MS);
      }
      return;
    }
    this.offer();
  }

  /** A spare becomes the connection to `info`: what it held goes out, then negotiation as usual. */
  adopt(info) {
    this.info = info;
    this.id = info.participant;
    this.polite = !!info.polite;
    const held = this.held || [];
    this.held = null;
    for (const msg of held) this.send(msg);
    if (this.negotiationPending) {
      this.negotiationPending = false;
      this.negotiationNeeded();
    }
  }

  async offer() {
    const pc = this.pc;
    try {
      this.makingOffer = true;
      await pc.setLocalDescription();
      this.send({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      console.warn('negotiation', e);
    } finally {
      this.makingOffer = false;
    }
  }

  replaceLocal(stream) {
    if (this.closed) return;
    const tracks = stream ? stream.getTracks() : [];
    for (const kind of ['audio', 'video']) {
      const track = tracks.find((t) => t.kind === kind) || null;
      const sender = this.senders.find((s) => s.kind === kind);
      if (sender) {
        if (track && sender.transceiver && sender.transceiver.direction === 'recvonly') sender.transceiver.direction = 'sendrecv';
        sender.sender.replaceTrack(track).catch(() => {});
      } else if (track) {
        this.senders.push({ kind, sender: this.pc.addTrack(track, stream) });
      } else if (this.offerEarly && !this.id) {
        // A spare that offers before the camera is ready: its track comes by replaceTrack,
        // without another offer.
        const t = this.pc.addTransceiver(kind, { direction: 'sendrecv' });
        this.senders.push({ kind, sender: t.sender, transceiver: t });
      } else {
        // No local device of this kind: still receive the other side's.
        const t = this.pc.addTransceiver(kind, { direction: 'recvonly' });
        this.senders.push({ kind, sender: t.sender, transceiver: t });
      }
    }
  }

  async description(type, sdp) {
    if (this.closed) return;
    const pc = this.pc;
    try {
      const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = type === 'answer';
      await pc.setRemoteDescription({ type, sdp });
      this.settingRemoteAnswer = false;
      this.negotiated = true;
      clearTimeout(this.firstOfferTimer);
      if (type === 'offer') {
        await pc.setLocalDescription();
        this.send({ type: 'answer', sdp: pc.localDescription.sdp });
      }
    } catch (e) {
      this.settingRemoteAnswer = false;
      console.warn('description', type, e);
    }
  }

  async candidate(c) {
    if (this.closed) return;
    try {
      await this.pc.addIceCandidate(c || undefined);
    } catch (e) {
      if (!this.ignoreOffer) console.warn('candidate', e);
    }
  }

  restartIce() {
    if (this.closed) return;
    if (!this.polite) this.pc.restartIce();
  }

  close() {
    this.closed = true;
    this.held = null;
    clearTimeout(this.firstOfferTimer);
    try { this.pc.close(); } catch { /* closed */ }
  }

  /** Level 3 good, 2 fair, 1 poor, 0 not connected; from RTT, loss and whether bytes flow. */
  async quality() {
    const pc = this.pc;
    const state = pc.iceConnectionState;
    let rtt = null; let lost = 0; let got = 0; let bytes = 0;
    try {
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime * 1000;
        if (r.type === 'inbound-rtp') { lost += r.packetsLost || 0; got += r.packetsReceived || 0; bytes += r.bytesReceived || 0; }
      });
    } catch { /* closed */ }
    const now = performance.now();
    const flowing = bytes > this.lastBytes;
    const stalledFor = flowing ? 0 : now - (this.lastStatsAt || now);
    if (flowing) this.lastStatsAt = now;
    else if (!this.lastStatsAt) this.lastStatsAt = now;
    this.lastBytes = bytes;
    const lossPct = got + lost > 0 ? (100 * lost) / (got + lost) : 0;
    let level = 0;
    if (state === 'connected' || state === 'completed') {
      level = 3;
      if ((rtt !== null && rtt > 300) || lossPct > 3) level = 2;
      if ((rtt !== null && rtt > 800) || lossPct > 10 || stalledFor > 4000) level = 1;
    }
    return { level, rttMs: rtt === null ? null : Math.round(rtt), lossPct: Math.round(lossPct * 10) / 10, bytesReceived: bytes, state };
  }
}

/** RTCIceCandidateInit with exactly the fields the server accepts. */
function candidateInit(c) {
  const j = c.toJSON();
  const out = { candidate: j.candidate };
  if (j.sdpMid !== undefined && j.sdpMid !== null) out.sdpMid = j.sdpMid;
  if (j.sdpMLineIndex !== undefined && j.sdpMLineIndex !== null) out.sdpMLineIndex = j.sdpMLineIndex;
  if (j.usernameFragment) out.usernameFragment = j.usernameFragment;
  return out;
}

/**
 * Camera and microphone; falls back to microphone only, then to nothing. The devices
 * chosen in a picker before (on this browser) are preferred, not required: a camera that
 * was unplugged since falls back to the default one.
 */
export async function getLocalMedia(facingMode) {
  const chosen = chosenDevices();
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  if (facingMode) video.facingMode = facingMode;
  else if (chosen.videoinput) video.deviceId = { ideal: chosen.videoinput };
  const audio = chosen.audioinput ? { deviceId: { ideal: chosen.audioinput } } : true;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }), error: null };
  } catch (e) {
    try {
      return { stream: await navigator.mediaDevices.getUserMedia({ audio }), error: e };
    } catch (e2) {
      return { stream: null, error: e2 };
    }
  }
}

/** Calls onLevel(0..1) about 15 times a second with the microphone's loudness. */
export function micMeter(stream, onLevel) {
  const track = stream?.getAudioTracks()[0];
  if (!track) return () => {};
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Uint8Array(an.fftSize);
  const timer = setInterval(() => {
    an.getByteTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += ((v - 128) / 128) ** 2;
    onLevel(Math.min(1, Math.sqrt(sum / buf.length) * 4));
  }, 66);
  return () => { clearInterval(timer); ctx.close().catch(() => {}); };
}

/** A short two-tone chime through the default speaker. */
export async function playTestSound() {
  const ctx = new AudioContext();
  await ctx.resume().catch(() => {});
  const gain = ctx.createGain();
  gain.connect(ctx.destination);
  gain.gain.value = 0.2;
  [[660, 0], [880, 0.35]].forEach(([f, at]) => {
    const o = ctx.createOscillator();
    o.frequency.value = f;
    o.connect(gain);
    o.start(ctx.currentTime + at);
    o.stop(ctx.currentTime + at + 0.3);
  });
  setTimeout(() => ctx.close().catch(() => {}), 1200);
}

/**
 * The connection check (docs/protocol.md `check_offer` / `check_answer` / `check_candidate`):
 * a peer connection with one data channel to examroom's own WebRTC peer, which echoes every
 * message. Sends `probes` timestamped probes and measures round-trip time and loss, and reads
 * which path (host, srflx, relay) the connection used.
 * Resolves {ok, rttMs, lossPct, path, error}; never rejects.
 */
export async function connectionCheck(signal, { timeoutMs = 10000, probes = 20, gapMs = 50 } = {}) {
  const pc = new RTCPeerConnection({ iceServers: signal.iceServers || [] });
  const dc = pc.createDataChannel('check', { ordered: false, maxRetransmits: 0 });
  const listeners = [];
  const listen = (type, fn) => { signal.on(type, fn); listeners.push([type, fn]); };
  let offered = false;
  let answered = false;
  const early = [];
  const remoteEarly = [];
  const result = { ok: false, rttMs: null, lossPct: null, path: null, error: null };
  const sendCandidate = (c) => signal.send({ type: 'check_candidate', candidate: c });
  try {
    const failed = new Promise((_, reject) => {
      listen('error', (m) => { if (m.about === 'check_offer' || m.code === 'too_many_checks') reject(new Error(m.code)); });
      setTimeout(() => reject(new Error('timeout')), timeoutMs);
    });
    failed.catch(() => {});
    pc.onicecandidate = ({ candidate }) => {
      const c = candidate && candidate.candidate ? candidateInit(candidate) : { candidate: '' };
      if (offered) sendCandidate(c); else early.push(c);
    };
    listen('check_answer', async (m) => {
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
        answered = true;
        for (const c of remoteEarly.splice(0)) await addRemote(pc, c);
      } catch (e) { console.warn('check answer', e); }
    });
    listen('check_candidate', (m) => { if (answered) addRemote(pc, m.candidate); else remoteEarly.push(m.candidate); });
    await pc.setLocalDescription(await pc.createOffer());
    if (!signal.send({ type: 'check_offer', sdp: pc.localDescription.sdp })) throw new Error('not connected');
    offered = true;
    for (const c of early.splice(0)) sendCandidate(c);
    const opened = new Promise((resolve) => { if (dc.readyState === 'open') resolve(); else dc.onopen = resolve; });
    await Promise.race([opened, failed]);

    const sentAt = new Map();
    const rtts = [];
    dc.onmessage = (e) => {
      const t = sentAt.get(e.data);
      if (t !== undefined) { rtts.push(performance.now() - t); sentAt.delete(e.data); }
    };
    for (let i = 0; i < probes; i++) {
      const m = `probe-${i}-${Math.random().toString(36).slice(2, 8)}`;
      sentAt.set(m, performance.now());
      try { dc.send(m); } catch { /* counted as lost */ }
      await new Promise((r) => setTimeout(r, gapMs));
    }
    const t0 = performance.now();
    while (sentAt.size && performance.now() - t0 < 1000) await new Promise((r) => setTimeout(r, 50));
    rtts.sort((a, b) => a - b);
    result.rttMs = rtts.length ? Math.round(rtts[Math.floor(rtts.length / 2)]) : null;
    result.lossPct = Math.round((100 * (probes - rtts.length)) / probes);
    result.path = await selectedPath(pc);
    result.ok = rtts.length > 0;
  } catch (e) {
    result.error = e.message || String(e);
  } finally {
    for (const [type, fn] of listeners) signal.off(type, fn);
    try { pc.close(); } catch { /* closed */ }
  }
  return result;
}

async function addRemote(pc, c) {
  try {
    if (!c || !c.candidate) await pc.addIceCandidate();
    else await pc.addIceCandidate(c);
  } catch { /* a candidate the browser cannot use: the check goes on */ }
}

/** The local candidate type of the selected candidate pair: host, srflx, prflx or relay. */
async function selectedPath(pc) {
  try {
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    let pair = pairId ? stats.get(pairId) : null;
    if (!pair) stats.forEach((r) => { if (!pair && r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
    const local = pair && stats.get(pair.localCandidateId);
    return local?.candidateType || null;
  } catch { return null; }
}

/** Whether `stream` has a live, enabled microphone and camera track. */
export function mediaOf(stream) {
  const on = (kind) => !!stream?.getTracks().some((t) => t.kind === kind && t.enabled && t.readyState === 'live');
  return { audio: on('audio'), video: on('video') };
}

/**
 * "Camera off" / "Muted" badges on a video tile (`.remote` or `.self-view`), so a black or
 * silent tile is not mistaken for a fault. `text`: { cameraOff, muted } in the page's language.
 */
export function tileBadges(tile, media, text) {
  if (!tile) return;
  let box = tile.querySelector('.tile-badges');
  if (!box) {
    box = document.createElement('span');
    box.className = 'tile-badges';
    tile.append(box);
  }
  const items = [[!media.video, 'camera-off', text.cameraOff], [!media.audio, 'muted', text.muted]]
    .filter(([off]) => off)
    .map(([, cls, label]) => Object.assign(document.createElement('span'), { className: `tile-badge ${cls}`, textContent: label }));
  box.replaceChildren(...items);
}

// --- device pickers and screen sharing ----------------------------------------------------

const DEVICES_KEY = 'examroom.devices';
/** The devices picked before on this browser: { videoinput, audioinput, audiooutput } ids. */
export function chosenDevices() {
  try { return JSON.parse(localStorage.getItem(DEVICES_KEY)) || {}; } catch { return {}; }
}
function remember(kind, id) {
  try { localStorage.setItem(DEVICES_KEY, JSON.stringify({ ...chosenDevices(), [kind]: id })); } catch { /* this visit only */ }
}

const canPickSpeaker = () => typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

/**
 * Camera, microphone and speaker pickers in `root`, filled from enumerateDevices and kept
 * current when devices come and go. Picking a camera or microphone opens that device and
 * hands `onStream(stream)` a stream with the new track in place of the old (muted or camera
 * off stays so); the page passes it to `Mesh.setLocalStream`, whose replaceTrack swaps it on
 * every peer without renegotiating. Picking a speaker sets the output of every element
 * `mediaElements()` returns (where the browser can: `setSinkId`). Choices are remembered.
 * `text`: { camera, microphone, speaker, unnamed(kind, n) } in the page's language.
 * Returns { refresh(), applySpeaker(el) }.
 */
export function devicePickers(root, { id, text, getStream, onStream, mediaElements = () => [] }) {
  const kinds = [['videoinput', text.camera], ['audioinput', text.microphone], ['audiooutput', text.speaker]];
  const selects = {};
  const wraps = {};
  root.replaceChildren();
  for (const [kind, label] of kinds) {
    const sel = document.createElement('select');
    sel.id = `${id}-${kind}`;
    sel.dataset.kind = kind;
    const lab = Object.assign(document.createElement('label'), { htmlFor: sel.id, textContent: label });
    const wrap = document.createElement('div');
    wrap.className = 'device-picker';
    wrap.hidden = true;
    wrap.append(lab, sel);
    root.append(wrap);
    selects[kind] = sel;
    wraps[kind] = wrap;
    sel.addEventListener('change', () => pick(kind, sel.value));
  }

  async function refresh() {
    let all = [];
    try { all = await navigator.mediaDevices.enumerateDevices(); } catch { /* none to offer */ }
    const stream = getStream();
    const current = {
      videoinput: stream?.getVideoTracks()[0]?.getSettings().deviceId,
      audioinput: stream?.getAudioTracks()[0]?.getSettings().deviceId,
      audiooutput: chosenDevices().audiooutput,
    };
    for (const [kind] of kinds) {
      // "default" and "communications" are aliases of a listed device: leave them out.
      const list = all.filter((d) => d.kind === kind && d.deviceId && !['default', 'communications'].includes(d.deviceId));
      const sel = selects[kind];
      sel.replaceChildren(...list.map((d, i) => Object.assign(document.createElement('option'), { value: d.deviceId, textContent: d.label || text.unnamed(kind, i + 1) })));
      if (current[kind] && list.some((d) => d.deviceId === current[kind])) sel.value = current[kind];
      // Nothing to choose between, or no way to choose (speaker without setSinkId): no picker.
      wraps[kind].hidden = list.length < 1 || (kind === 'audiooutput' && !canPickSpeaker()) || (kind !== 'audiooutput' && !current[kind]);
    }
  }

  async function applySpeaker(el) {
    const sink = chosenDevices().audiooutput;
    if (sink && canPickSpeaker() && el.sinkId !== sink) await el.setSinkId(sink).catch(() => {});
  }

  async function pick(kind, deviceId) {
    remember(kind, deviceId);
    if (kind === 'audiooutput') {
      for (const el of mediaElements()) await applySpeaker(el);
      return;
    }
    const old = getStream();
    const media = kind === 'videoinput' ? 'video' : 'audio';
    const oldTrack = old?.getTracks().find((t) => t.kind === media);
    const constraints = media === 'video' ? { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } } : { deviceId: { exact: deviceId } };
    let fresh;
    try {
      fresh = (await navigator.mediaDevices.getUserMedia({ [media]: constraints })).getTracks()[0];
    } catch {
      refresh();
      return;
    }
    if (oldTrack) fresh.enabled = oldTrack.enabled;
    const next = new MediaStream([...(old?.getTracks() || []).filter((t) => t.kind !== media), fresh]);
    oldTrack?.stop();
    onStream(next);
    refresh();
  }

  navigator.mediaDevices?.addEventListener?.('devicechange', refresh);
  refresh();
  return { refresh, applySpeaker };
}

/**
 * Share the screen in place of the camera: every peer's video sender gets the screen's
 * track (replaceTrack); `onEnd()` runs when sharing stops, from `stop()` or the browser's
 * own "Stop sharing". Resolves with { track, stop() }, or null when the person cancelled.
 */
export async function shareScreen(mesh, cameraStream, onEnd) {
  let screen;
  try {
    screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch {
    return null;
  }
  const track = screen.getVideoTracks()[0];
  const shared = new MediaStream([...(cameraStream?.getAudioTracks() || []), track]);
  mesh.setLocalStream(shared);
  mesh.setMediaState({ audio: !!cameraStream?.getAudioTracks().some((t) => t.enabled), video: true });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    track.stop();
    mesh.setLocalStream(cameraStream);
    onEnd?.();
  };
  track.addEventListener('ended', stop);
  return { track, stream: shared, stop };
}

// --- the call view: what both pages show of a call --------------------------------------

/**
 * The parts of the call page the patient's and the physician's pages share, on the same
 * element ids in both (`#remotes`, `#stage-empty`, `#call-banner`, `#chat-log`): one video
 * tile per remote participant with its "Camera off" / "Muted" badges, the banner over the
 * stage, and the chat log. `text()` gives { cameraOff, muted, videoOf(name) } in the page's
 * language; `onTile(video)` runs for each remote video (the speaker picker).
 */
export class CallView {
  constructor({ text, onTile = () => {} }) {
    this.text = text;
    this.onTile = onTile;
    this.media = new Map();
  }

  /** A participant's stream: their tile, made the first time. */
  addRemote(id, stream, name = '') {
    let box = document.getElementById(`remote-${id}`);
    if (!box) {
      const video = Object.assign(document.createElement('video'), { autoplay: true, playsInline: true });
      video.setAttribute('playsinline', '');
      video.setAttribute('aria-label', this.text().videoOf(name));
      const who = Object.assign(document.createElement('span'), { className: 'who', textContent: name });
      box = Object.assign(document.createElement('div'), { className: 'remote', id: `remote-${id}` });
      box.append(video, who);
      document.getElementById('remotes').append(box);
      tileBadges(box, this.media.get(id) || { audio: true, video: true }, this.text());
    }
    const v = box.querySelector('video');
    if (v.srcObject !== stream) v.srcObject = stream;
    this.onTile(v);
    v.play?.().catch(() => {});
    document.getElementById('stage-empty').hidden = true;
  }

  removeRemote(id) {
    document.getElementById(`remote-${id}`)?.remove();
  }

  clearRemotes() {
    document.getElementById('remotes').replaceChildren();
    document.getElementById('stage-empty').hidden = false;
  }

  /** A participant's microphone/camera went on or off (`media_state`). */
  mediaState(id, media) {
    this.media.set(id, media);
    tileBadges(document.getElementById(`remote-${id}`), media, this.text());
  }

  /** The language changed: the badges again. */
  relabel() {
    for (const [id, media] of this.media) tileBadges(document.getElementById(`remote-${id}`), media, this.text());
  }

  banner(text) {
    const el = document.getElementById('call-banner');
    el.hidden = !text;
    if (text) el.textContent = text;
  }

  /**
   * `chat_history`: the visit's chat as the server keeps it, replacing what the log shows
   * (a reloaded page starts empty; a page admitted again shows it once). Lines from
   * `self` (this connection's participant) are labelled `you`.
   */
  chatHistory(lines, self, you) {
    document.getElementById('chat-log').replaceChildren();
    for (const l of lines || []) this.chatLine(l.from === self ? you : l.name, l.text);
  }

  chatLine(from, text) {
    const li = document.createElement('li');
    if (from) li.append(Object.assign(document.createElement('span'), { className: 'from', textContent: `${from}: ` }));
    li.append(document.createTextNode(text));
    document.getElementById('chat-log').append(li);
    li.scrollIntoView({ block: 'nearest' });
  }
}
