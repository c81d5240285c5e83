// Admit → connected in real Chromium (issue 20): a benchmark, not a test (run by
// scripts/bench-connect-browser). One clinic on a fresh server; for each visit a patient
// waits, the physician clicks Admit, and both pages' peer connections are timed from that
// click to ICE connected and to DTLS connected, with the steps between (the `admitted`
// notice, the physician's camera, offer, answer, first candidates, ICE checking) so the
// report says where the time goes. Prints one JSON object on stdout.
import { launch, startServer, setUpClinic, patientWaits, rtcReport } from './support.mjs';

const N = Number(process.env.CONNECT_N || 10);
const SETTLE_MS = Number(process.env.CONNECT_SETTLE_MS ?? 1000);

// Every page: the wall clock (ms, sub-ms resolution) of each step of each peer connection,
// of getUserMedia, and of every signalling message received. Pages of one browser on one
// machine share the clock, so the two sides' times compare directly.
function recorder() {
  const now = () => performance.timeOrigin + performance.now();
  const ev = (window.__ev = []);
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Orig {
    constructor(...a) {
      super(...a);
      const id = ev.filter((e) => e.what === 'pc').length;
      const log = (what, extra) => ev.push({ at: now(), pc: id, what, ...extra });
      log('pc');
      this.addEventListener('iceconnectionstatechange', () => log(`ice:${this.iceConnectionState}`));
      this.addEventListener('connectionstatechange', () => log(`conn:${this.connectionState}`));
      this.addEventListener('icegatheringstatechange', () => log(`gather:${this.iceGatheringState}`));
      this.addEventListener('icecandidate', (e) => { if (e.candidate) log('local-candidate'); });
      const sld = this.setLocalDescription.bind(this);
      this.setLocalDescription = async (...d) => { const r = await sld(...d); log(`local:${this.localDescription?.type}`); return r; };
      const srd = this.setRemoteDescription.bind(this);
      this.setRemoteDescription = async (d) => { log(`remote:${d?.type}`); return srd(d); };
      const aic = this.addIceCandidate.bind(this);
      this.addIceCandidate = async (c) => { log('remote-candidate'); return aic(c); };
    }
  };
  // Main-thread tasks of 50 ms or more: a busy page handles signalling late.
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) ev.push({ at: performance.timeOrigin + e.startTime, what: `longtask:${Math.round(e.duration)}ms` });
    }).observe({ type: 'longtask' });
  } catch { /* not supported */ }
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    ev.push({ at: now(), what: 'gum:start' });
    const s = await gum(c);
    ev.push({ at: now(), what: 'gum:done' });
    return s;
  };
  // The signalling messages of a call set-up, received (`ws:admitted`, `ws:offer`) and sent
  // (`ws:>offer`, `ws:>answer`).
  const WATCHED = new Set(['admitted', 'offer', 'answer']);
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (m) => {
        try { const t = JSON.parse(m.data).type; if (WATCHED.has(t)) ev.push({ at: now(), what: `ws:${t}` }); } catch { /* not JSON */ }
      });
    }

    send(data) {
      try { const t = JSON.parse(data).type; if (WATCHED.has(t)) ev.push({ at: now(), what: `ws:>${t}` }); } catch { /* not JSON */ }
      return super.send(data);
    }
  };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : null; };

// The page's events of this visit: those of its call connection — the one that connects
// after the click, or (a visit that did not connect) any that changed after it — from
// whenever they happened (a connection prepared before the click has steps before t0),
// and the page-wide ones (camera, signalling) from the click on. The patient's
// connection-check pc and earlier visits' pcs were closed before the click.
async function events(page, since) {
  const all = await page.evaluate(() => window.__ev || []);
  let call = new Set(all.filter((e) => e.at >= since && e.what === 'conn:connected').map((e) => e.pc));
  if (!call.size) call = new Set(all.filter((e) => e.at >= since && e.pc !== undefined).map((e) => e.pc));
  return all.filter((e) => (e.pc === undefined ? e.at >= since : call.has(e.pc)));
}

// The first time `what` happened on the page's call connection, or page-wide.
function first(evs, what) {
  const hit = evs.find((e) => e.what === what);
  return hit ? hit.at : null;
}

const earliest = (...xs) => { const ys = xs.filter((x) => x !== null); return ys.length ? Math.min(...ys) : null; };

const server = await startServer();
const browser = await launch();
const log = [];
const runs = [];
const failures = [];
try {
  const { doc, docCtx } = await setUpClinic(browser, server, log);
  // The recorder must be in place before a page opens its signalling socket.
  await docCtx.addInitScript(recorder);
  await doc.reload();
  for (let i = 0; i < N; i++) {
    const { patient, visit } = await patientWaits(browser, server, doc, log, { name: `Bench Patient ${i}`, onPage: (pg) => pg.addInitScript(recorder) });
    // A physician admits a second or more after the patient appears, not within the same
    // few milliseconds: the pages settle first (CONNECT_SETTLE_MS, default 1000).
    await doc.waitForTimeout(SETTLE_MS);
    // t0: the click as the page sees it (Playwright's own checks before clicking do not count).
    await doc.evaluate(() => {
      window.__click = null;
      document.addEventListener('click', (e) => {
        if (e.target.closest?.('[id^=admit-]')) window.__click = performance.timeOrigin + performance.now();
      }, { capture: true, once: true });
    });
    await doc.click(`#admit-${visit}`);
    const t0 = await doc.evaluate(() => window.__click);
    const connected = async (page) => page.waitForFunction((since) => (window.__ev || []).some((e) => e.at >= since && e.what === 'conn:connected'), t0, { timeout: 30000 });
    const rel = (x) => (x === null ? null : Math.round((x - t0) * 10) / 10);
    const trace = (who, evs) => evs.map((e) => `${rel(e.at)} ${who}${e.pc === undefined ? '' : `#${e.pc}`} ${e.what}`);
    let d; let p;
    try {
      await Promise.all([connected(doc), connected(patient)]);
    } catch (e) {
      // A call that does not connect is a result too: say what each side was doing, and when.
      d = await events(doc, t0);
      p = await events(patient, t0);
      failures.push({
        visit: i, error: e.message.split('\n')[0], physician: await rtcReport(doc), patient: await rtcReport(patient),
        // Whether each page's recorder ran: without it a connected call looks like a failure.
        recorded: { physician: await doc.evaluate(() => Array.isArray(window.__ev)), patient: await patient.evaluate(() => Array.isArray(window.__ev)) },
        trace: [...trace('doc', d), ...trace('patient', p)].sort((a, b) => parseFloat(a) - parseFloat(b)),
      });
      await doc.click('#end-visit');
      await doc.getByRole('dialog').getByRole('button', { name: /End visit|Terminar/ }).click();
      await doc.waitForSelector('#lobby:not([hidden])');
      await patient.context().close();
      continue;
    }
    d = await events(doc, t0);
    p = await events(patient, t0);
    // Negative: done before the click (a connection prepared ahead).
    runs.push({
      admitted_doc: rel(first(d, 'ws:admitted')),
      admitted_patient: rel(first(p, 'ws:admitted')),
      camera_doc: rel(first(d, 'gum:done')),
      offer_set: rel(first(d, 'local:offer') ?? first(p, 'local:offer')),
      offer_sent: rel(first(d, 'ws:>offer') ?? first(p, 'ws:>offer')),
      offer_received: rel(first(p, 'ws:offer') ?? first(d, 'ws:offer')),
      answer_sent: rel(first(p, 'ws:>answer') ?? first(d, 'ws:>answer')),
      answer_applied: rel(first(d, 'remote:answer') ?? first(p, 'remote:answer')),
      first_remote_candidate: rel(earliest(first(d, 'remote-candidate'), first(p, 'remote-candidate'))),
      ice_checking: rel(earliest(first(d, 'ice:checking'), first(p, 'ice:checking'))),
      ice_connected: rel(Math.max(first(d, 'ice:connected'), first(p, 'ice:connected'))),
      dtls_connected: rel(Math.max(first(d, 'conn:connected'), first(p, 'conn:connected'))),
    });
    if (process.env.CONNECT_TRACE) {
      console.error([...trace('doc', d), ...trace('patient', p)].sort((a, b) => parseFloat(a) - parseFloat(b)).join('\n'), '\n---');
    }
    // End the visit; the patient page goes to its survey; close it.
    await doc.click('#end-visit');
    await doc.getByRole('dialog').getByRole('button', { name: /End visit|Terminar/ }).click();
    await doc.waitForSelector('#lobby:not([hidden])');
    await patient.context().close();
  }
} finally {
  await browser.close();
  await server.stop();
}
const keys = Object.keys(runs[0] || {});
const summary = {};
for (const k of keys) {
  const xs = runs.map((r) => r[k]).filter((x) => x !== null && Number.isFinite(x));
  summary[k] = { p50: median(xs), p90: pct(xs, 0.9), max: xs.length ? Math.max(...xs) : null };
}
console.log(JSON.stringify({ visits: runs.length, failed: failures.length, summary, failures, runs, log }, null, 1));
