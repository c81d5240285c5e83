// Helpers for the browser tests: Chromium with fake camera and microphone, an axe-core
// scan, screenshots at phone and desktop sizes, WebRTC stats and signalling read from the
// page (what a failed call step prints).
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
export const BASE = process.env.EXAMROOM_URL || 'http://127.0.0.1:8080';
export const SCREENSHOTS = process.env.EXAMROOM_SCREENSHOTS || path.resolve('../../docs/screenshots');
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

export async function launch() {
  return chromium.launch({
    executablePath: process.env.EXAMROOM_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/** A fresh profile (own cookies and storage) whose pages record every RTCPeerConnection. */
export async function newContext(browser, name, log, options = {}) {
  const ctx = await browser.newContext({ viewport: DESKTOP, baseURL: BASE, permissions: ['camera', 'microphone'], ...options });
  await ctx.addInitScript(() => {
    const Orig = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = class extends Orig {
      constructor(...a) { super(...a); window.__pcs.push(this); }
    };
  });
  ctx.on('page', (p) => wire(p, name, log));
  return ctx;
}

function wire(page, name, log) {
  page.on('pageerror', (e) => log.push(`[${name}] page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) log.push(`[${name}] console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
}

/** Media peer connections that are ICE-connected, and the bytes they have received. */
export async function media(page) {
  return page.evaluate(async () => {
    let connected = 0; let bytes = 0;
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      if (!['connected', 'completed'].includes(pc.iceConnectionState)) continue;
      connected += 1;
      const stats = await pc.getStats();
      stats.forEach((r) => { if (r.type === 'inbound-rtp') bytes += r.bytesReceived || 0; });
    }
    return { connected, bytes };
  });
}

/** Wait until the page has an ICE-connected peer connection whose inbound bytes grow. */
export async function receivesMedia(page, timeoutMs = 30000) {
  const t0 = Date.now();
  let first = null;
  while (Date.now() - t0 < timeoutMs) {
    const m = await media(page);
    if (m.connected > 0) {
      if (first && m.bytes > first.bytes + 1000) return m;
      if (!first || m.bytes <= 0) first = m;
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`no connected peer connection receiving media within ${timeoutMs} ms (last: ${JSON.stringify(await media(page))})\n${await rtcReport(page)}`);
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core scan; returns the serious and critical violations as readable lines. */
export async function axe(page, label) {
  await page.evaluate(axeSource);
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return res.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${label}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

/** Screenshots at phone and desktop size: docs/screenshots/<name>-phone.png, -desktop.png. */
export async function shoot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-phone.png`) });
  await page.setViewportSize(DESKTOP);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-desktop.png`) });
}

/** The first-admin set-up link the server prints in its log on first start. */
export async function setupLinkFromLog(timeoutMs = 15000) {
  const file = process.env.EXAMROOM_SERVER_LOG;
  if (!file) throw new Error('EXAMROOM_SERVER_LOG is not set: run through scripts/browser-test');
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const text = readFileSync(file, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
    const m = text.match(/(https?:\/\/[^\s"']+)?(\/setup\/[A-Za-z0-9_\-.~%]+)/);
    if (m) return new URL(m[2], BASE).href;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the server log has no /setup/<token> link for the first admin');
}

/** Every peer connection of the page, as a line a person can read when a call test fails. */
export async function rtcReport(page) {
  return page.evaluate(async () => {
    const lines = [];
    for (const [i, pc] of (window.__pcs || []).entries()) {
      const c = { local: 0, remote: 0, pairs: {}, inBytes: 0, outBytes: 0, selected: null };
      try {
        const stats = await pc.getStats();
        stats.forEach((r) => {
          if (r.type === 'local-candidate') c.local += 1;
          if (r.type === 'remote-candidate') c.remote += 1;
          if (r.type === 'candidate-pair') c.pairs[r.state] = (c.pairs[r.state] || 0) + 1;
          if (r.type === 'inbound-rtp') c.inBytes += r.bytesReceived || 0;
          if (r.type === 'outbound-rtp') c.outBytes += r.bytesSent || 0;
          if (r.type === 'transport' && r.selectedCandidatePairId) c.selected = r.selectedCandidatePairId;
        });
      } catch { /* closed */ }
      lines.push(`pc${i}: signaling=${pc.signalingState} ice=${pc.iceConnectionState} connection=${pc.connectionState} `
        + `gathering=${pc.iceGatheringState} candidates local=${c.local} remote=${c.remote} pairs=${JSON.stringify(c.pairs)} `
        + `selected=${c.selected ? 'yes' : 'no'} bytes in=${c.inBytes} out=${c.outBytes} `
        + `remote-ufrag=${/a=ice-ufrag:(\S+)/.exec(pc.remoteDescription?.sdp || '')?.[1] || '-'}`);
    }
    return lines.length ? lines.join('\n') : 'no peer connections';
  }).catch((e) => `(could not read: ${e.message})`);
}

/**
 * What a failed call step prints: every page's peer connections and the last signalling
 * messages (see signallingLog), so a flaky failure can be read rather than re-run.
 */
export async function callDiagnostics(pages, signalling, last = 80) {
  const parts = [];
  for (const [name, page] of Object.entries(pages)) parts.push(`${name}'s peer connections:\n${await rtcReport(page)}`);
  parts.push(`signalling (last ${last} messages):\n${signalling.slice(-last).join('\n')}`);
  return parts.join('\n');
}

/**
 * The signalling messages a page sends and receives, without SDP or candidate bodies
 * (type, peer, ICE ufrag): what a failed call test prints to show who said what, when.
 */
export function signallingLog(page, name, lines) {
  page.on('websocket', (ws) => {
    const at = () => new Date().toISOString().slice(11, 23);
    lines.push(`${at()} ${name}: websocket opened`);
    const note = (dir, payload) => {
      let m;
      try { m = JSON.parse(payload); } catch { return; }
      if (['ping', 'pong', 'queue'].includes(m.type)) return;
      const ufrag = m.sdp ? /a=ice-ufrag:(\S+)/.exec(m.sdp)?.[1] : m.candidate?.usernameFragment;
      const peer = m.from || m.to || m.participant || m.peer?.participant;
      lines.push(`${at()} ${name} ${dir} ${m.type}${peer ? ` ${String(peer).slice(0, 8)}` : ''}${ufrag ? ` ufrag=${ufrag}` : ''}${m.code ? ` ${m.code}` : ''}`);
    };
    ws.on('framesent', (f) => note('→', f.payload));
    ws.on('framereceived', (f) => note('←', f.payload));
    ws.on('close', () => lines.push(`${at()} ${name}: websocket closed`));
  });
}

/** Sign in on a staff page if it asks. */
export async function signInIfAsked(page, email, password = PASSWORD) {
  await page.waitForSelector('#signin:not([hidden]), #app:not([hidden])');
  if (await page.isVisible('#signin')) {
    await page.fill('#signin-email', email);
    await page.fill('#signin-password', password);
    await page.click('#signin-form button[type=submit]');
  }
  await page.waitForSelector('#app:not([hidden])');
}

export const PASSWORD = 'correct horse battery staple';
