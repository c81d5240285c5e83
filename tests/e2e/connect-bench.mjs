// Admit → connected in real Chromium (issue 20): a benchmark, not a test (run by
// scripts/bench-connect-browser). One clinic on a fresh server; for each visit a patient
// waits, the physician clicks Admit, and both pages' peer connections are timed from that
// click to ICE connected and to DTLS connected, with the steps between (the `admitted`
// notice, the physician's camera, offer, answer, first candidates, ICE checking) so the
// report says where the time goes. Prints one JSON object on stdout.
import { launch, startServer, setUpClinic, patientWaits, rtcReport } from './support.mjs';

const N = Number(process.env.CONNECT_N || 10);

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
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    ev.push({ at: now(), what: 'gum:start' });
    const s = await gum(c);
    ev.push({ at: now(), what: 'gum:done' });
    return s;
  };
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (m) => {
        try { const t = JSON.parse(m.data).type; if (t === 'admitted') ev.push({ at: now(), what: 'ws:admitted' }); } catch { /* not JSON */ }
      });
    }
  };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : null; };

async function events(page, since) {
  return (await page.evaluate(() => window.__ev || [])).filter((e) => e.at >= since);
}

// The first time `what` happened after `since` on the page's call connection (the pc made
// after the admit; the patient's connection-check pc was made before it).
function first(evs, what) {
  const callPcs = new Set(evs.filter((e) => e.what === 'pc').map((e) => e.pc));
  const hit = evs.find((e) => e.what === what && (e.pc === undefined || callPcs.has(e.pc)));
  return hit ? hit.at : null;
}

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
    try {
      await Promise.all([connected(doc), connected(patient)]);
    } catch (e) {
      // A call that does not connect is a result too: say what each side was doing.
      failures.push({ visit: i, error: e.message.split('\n')[0], physician: await rtcReport(doc), patient: await rtcReport(patient) });
      await doc.click('#end-visit');
      await doc.getByRole('dialog').getByRole('button', { name: /End visit|Terminar/ }).click();
      await doc.waitForSelector('#lobby:not([hidden])');
      await patient.context().close();
      continue;
    }
    const d = await events(doc, t0);
    const p = await events(patient, t0);
    const rel = (x) => (x === null ? null : Math.round((x - t0) * 10) / 10);
    runs.push({
      admitted_doc: rel(first(d, 'ws:admitted')),
      admitted_patient: rel(first(p, 'ws:admitted')),
      camera_doc: rel(first(d, 'gum:done')),
      offer_sent: rel(first(d, 'local:offer') ?? first(p, 'local:offer')),
      answer_applied: rel(first(d, 'remote:answer') ?? first(p, 'remote:answer')),
      first_remote_candidate: rel(Math.min(...[first(d, 'remote-candidate'), first(p, 'remote-candidate')].filter((x) => x !== null))),
      ice_checking: rel(Math.min(...[first(d, 'ice:checking'), first(p, 'ice:checking')].filter((x) => x !== null))),
      ice_connected: rel(Math.max(first(d, 'ice:connected'), first(p, 'ice:connected'))),
      dtls_connected: rel(Math.max(first(d, 'conn:connected'), first(p, 'conn:connected'))),
    });
    if (process.env.CONNECT_TRACE) {
      const line = (who, evs) => evs.map((e) => `${rel(e.at)} ${who}${e.pc === undefined ? '' : `#${e.pc}`} ${e.what}`);
      console.error([...line('doc', d), ...line('patient', p)].sort((a, b) => parseFloat(a) - parseFloat(b)).join('\n'), '\n---');
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
