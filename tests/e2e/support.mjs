// Helpers for the browser tests: Chromium with fake camera and microphone, an axe-core
// scan, screenshots at phone and desktop sizes, WebRTC stats read from the page, a second
// examroom server with its own settings, and the clinic set-up most tests start from.
import { chromium } from 'playwright-core';
import { watchApiReads } from './api-fields.mjs';
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
export const BASE = process.env.EXAMROOM_URL || 'http://127.0.0.1:8080';
export const SCREENSHOTS = process.env.EXAMROOM_SCREENSHOTS || path.resolve('../../docs/screenshots');
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };
export const TABLET = { width: 1024, height: 768 };
export const NARROW = { width: 320, height: 640 };

/** How wide the page is at 320 px: `{ scroll, width }`; scroll > width means sideways scrolling. The page is left at desktop size. */
export async function widthAt320(page) {
  await page.setViewportSize(NARROW);
  await page.waitForTimeout(200);
  const w = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, width: innerWidth }));
  await page.setViewportSize(DESKTOP);
  return w;
}

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

/** Chromium for test `t`, closed after it; the pages' script errors in `log` are printed then. */
export async function browserFor(t, log) {
  const browser = await launch();
  t.after(async () => { await browser.close(); if (log.length) console.log(log.join('\n')); });
  return browser;
}

/**
 * The usual start of a browser test `t`: its own server (`env`, `args` as for startServer),
 * Chromium, ordered steps, and the lists a test fills (`log` of script errors,
 * `violations` from axe). Everything is stopped after the test.
 */
export async function browserTest(t, { env = {}, args = [] } = {}) {
  const log = [];
  const server = await startServer(env, args);
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  return { log, server, browser, step: steps(t), violations: [] };
}

/**
 * `step(name, fn)` for test `t`: steps run in order; once one fails the rest are skipped
 * rather than each timing out.
 */
export function steps(t) {
  let failed = null;
  return async (name, fn) => {
    if (failed) return t.test(name, { skip: `after "${failed}" failed` }, () => {});
    return t.test(name, async () => {
      try { await fn(); } catch (e) { failed = name; throw e; }
    });
  };
}

let apiReads = null;
/** From now on every new context's pages report which API fields they read into `reads` (api-fields.mjs). */
export function watchApi(reads) { apiReads = reads; }

/** A fresh profile (own cookies and storage) whose pages record every RTCPeerConnection. */
export async function newContext(browser, name, log, options = {}) {
  const ctx = await browser.newContext({ viewport: DESKTOP, baseURL: BASE, permissions: ['camera', 'microphone'], ...options });
  if (apiReads) await watchApiReads(ctx, apiReads);
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

/**
 * Screenshots at phone and desktop size: docs/screenshots/<name>-phone.png, -desktop.png;
 * `tablet: true` adds -tablet.png (1024×768). `before(page)` runs after each resize (e.g.
 * to scroll the part being shown into view). The page is left at desktop size.
 */
export async function shoot(page, name, { tablet = false, before } = {}) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const sizes = [['phone', PHONE], ...(tablet ? [['tablet', TABLET]] : []), ['desktop', DESKTOP]];
  for (const [suffix, size] of sizes) {
    await page.setViewportSize(size);
    await page.waitForTimeout(300);
    await before?.(page);
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${suffix}.png`) });
  }
}

/** The first-admin set-up link the server prints in its log on first start. */
export async function setupLinkFromLog(timeoutMs = 15000, file = process.env.EXAMROOM_SERVER_LOG, base = BASE) {
  if (!file) throw new Error('EXAMROOM_SERVER_LOG is not set: run through scripts/browser-test');
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const text = readFileSync(file, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
    const m = text.match(/(https?:\/\/[^\s"']+)?(\/setup\/[A-Za-z0-9_\-.~%]+)/);
    if (m) return new URL(m[2], base).href;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the server log has no /setup/<token> link for the first admin');
}

/** Every peer connection of the page, as a line a person can read when a call test fails. */
export async function rtcReport(page) {
  return page.evaluate(async () => {
    const lines = [];
    const all = window.__pcs || [];
    const closed = all.filter((pc) => pc.signalingState === 'closed').length;
    if (closed) lines.push(`${closed} closed peer connection${closed === 1 ? '' : 's'} (earlier calls, connection checks)`);
    for (const [i, pc] of all.entries()) {
      if (pc.signalingState === 'closed') continue;
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

/**
 * Another examroom server (the binary scripts/browser-test built, EXAMROOM_BIN) on a free
 * loopback port with a fresh data directory under TMPDIR and the given EXAMROOM__… settings.
 * Resolves { url, log, stop() } once it accepts connections.
 */
export async function startServer(env = {}, args = []) {
  const bin = process.env.EXAMROOM_BIN;
  if (!bin) throw new Error('EXAMROOM_BIN is not set: run through scripts/browser-test');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'examroom-server-'));
  const log = path.join(dir, 'server.log');
  const out = openSync(log, 'a');
  const child = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', path.join(dir, 'data'), ...args], {
    env: { ...process.env, EXAMROOM__SERVER__PUBLIC_URL: url, ...env },
    stdio: ['ignore', out, out],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } };
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`examroom exited (${child.exitCode}):\n${readFileSync(log, 'utf8').slice(-3000)}`);
    if (await canConnect(port)) return { url, log, stop };
    if (Date.now() - t0 > 20000) { await stop(); throw new Error(`examroom did not listen within 20 s:\n${readFileSync(log, 'utf8').slice(-3000)}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * A clinic on `server` ({url, log}): the first admin from the server log, a physician
 * invited and signed in on the dashboard, one room of theirs. Returns the pages.
 */
export async function setUpClinic(browser, server, log, { room = 'Family medicine', physician = 'Dr Meredith Grey', email = 'grey@clinic.test', languages = '' } = {}) {
  const adminCtx = await newContext(browser, 'admin', log, { baseURL: server.url });
  const admin = await adminCtx.newPage();
  await admin.goto(await setupLinkFromLog(15000, server.log, server.url));
  await admin.fill('#email', 'admin@clinic.test');
  await admin.fill('#name', 'Ada Admin');
  await admin.fill('#password', PASSWORD);
  await admin.fill('#password2', PASSWORD);
  await admin.click('button[type=submit]');
  await admin.waitForSelector('#setup-done:not([hidden])');
  await admin.goto('/admin');
  await signInIfAsked(admin, 'admin@clinic.test');
  const { doc, docCtx } = await addPhysician(browser, server, admin, log, { physician, email, room, languages });
  return { admin, doc, adminCtx, docCtx };
}

/**
 * One more physician on `server`: the admin (signed in on /admin, page `admin`) invites
 * them (`languages` as typed on the admin page, "es, en") and gives them a room of their
 * own; they accept the invitation and sign in on the dashboard, in a browser context of
 * their own (named `name` in the log). Returns { doc, docCtx }.
 */
export async function addPhysician(browser, server, admin, log, { physician, email, room, languages = '', name = 'physician' }) {
  const docCtx = await newContext(browser, name, log, { baseURL: server.url });
  const doc = await docCtx.newPage();
  await admin.click('#tab-staff');
  const before = (await admin.textContent('#staff-url')).trim();
  await admin.fill('#staff-email', email);
  await admin.fill('#staff-name', physician);
  await admin.fill('#staff-languages', languages);
  await admin.click('#staff-form button[type=submit]');
  await admin.waitForFunction((prev) => !document.querySelector('#staff-out').hidden && document.querySelector('#staff-url').textContent.trim() !== prev, before);
  const invitation = (await admin.textContent('#staff-url')).trim();
  await admin.click('#tab-rooms');
  await admin.fill('#room-name', room);
  await admin.getByLabel(physician).check();
  await admin.click('#room-save');
  await admin.waitForSelector(`#rooms-body >> text=${room}`);
  await doc.goto(new URL(new URL(invitation).pathname, server.url).href);
  // The invitation knows whom it is for: the e-mail is shown read-only, the name prefilled.
  await doc.waitForSelector('#email[readonly]');
  if ((await doc.inputValue('#email')) !== email) throw new Error(`the invitation page shows ${await doc.inputValue('#email')}, not ${email}`);
  await doc.fill('#name', physician);
  await doc.fill('#password', PASSWORD);
  await doc.fill('#password2', PASSWORD);
  await doc.click('button[type=submit]');
  await doc.waitForSelector('#setup-done:not([hidden])');
  await doc.goto('/dashboard');
  await signInIfAsked(doc, email);
  return { doc, docCtx };
}

/**
 * The physician on `doc` (the dashboard) lists themselves in the public directory through
 * "My directory profile": `specialties` ("Cardiology, Internal medicine"), which of
 * languages, gender, sites, bio to publish (`publish`: ['languages']), `sites`
 * ([{name, address, lat, lon}]). Waits for "Profile saved.".
 */
export async function listInDirectory(doc, { specialties = '', publish = [], sites = [], accepting = true, bio = '' } = {}) {
  await doc.click('#my-profile summary');
  await doc.waitForFunction(() => document.querySelector('#profile-name').value !== '');
  await doc.check('#profile-listed');
  await doc.fill('#profile-specialties', specialties);
  await doc.fill('#profile-bio', bio);
  await doc.setChecked('#profile-accepting', accepting);
  await doc.check('#profile-form [name=visit_video]');
  for (const [i, site] of sites.entries()) {
    await doc.click('#profile-add-site');
    for (const k of ['name', 'address', 'lat', 'lon']) await doc.fill(`#site-${i}-${k}`, String(site[k]));
  }
  for (const k of ['languages', 'gender', 'sites', 'bio']) await doc.setChecked(`#profile-form [name=publish_${k}]`, publish.includes(k));
  await doc.click('#profile-form button[type=submit]');
  await doc.waitForFunction(() => /saved|guardada/i.test(document.querySelector('#profile-status').textContent));
}

/** The physician on `doc` opens appointments all day every day (`zone`), from "My schedule". */
export async function openAllDay(doc, zone = 'Europe/Madrid') {
  await doc.click('#appt-schedule summary');
  await doc.fill('#appt-zone', zone);
  for (const d of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) await doc.fill(`#appt-day-${d}`, '00:00-23:59');
  await doc.click('#appt-schedule-form button[type=submit]');
  await doc.waitForFunction(() => document.querySelector('#appt-error').textContent.length > 0);
  const said = await doc.textContent('#appt-error');
  if (!/saved|guardado/i.test(said)) throw new Error(`the schedule was not saved: ${said}`);
}

/**
 * A join link is minted — by the physician on the dashboard, or, when it names a patient
 * record (`ref`), by the admin on the admin page (physicians may not name records, issue 17);
 * the patient (a fresh context) confirms their date of birth (`born`) when asked, checks
 * devices and waits (`onIdentity(page)` answers the date-of-birth step instead).
 * `onPage(page)` runs before the patient's page opens anything; `gives`: the name the
 * patient types on the device-check page instead of the link's; `context`: options for the
 * patient's browser context (e.g. `{ locale: 'es-ES' }`).
 * Returns { patient, visit }.
 */
export async function patientWaits(browser, server, doc, log, { name, gives, ref = '', reason = '', admin, born, onIdentity, onPage, context = {} }) {
  const minter = ref ? admin : doc;
  if (!minter) throw new Error('a link naming a patient record is minted by the admin: pass `admin`');
  if (ref) {
    await admin.click('#tab-links');
    await admin.waitForSelector('#links-room option', { state: 'attached' });
  } else {
    await doc.waitForSelector('#link-room option', { state: 'attached' });
  }
  const before = (await minter.textContent('#link-url')).trim();
  await minter.fill('#link-name', name);
  if (ref) await minter.fill('#link-ref', ref);
  await minter.fill('#link-reason', reason);
  await minter.click('#link-form button[type=submit]');
  await minter.waitForFunction((prev) => !document.querySelector('#link-out').hidden && document.querySelector('#link-url').textContent.trim() !== prev, before);
  const joinUrl = (await minter.textContent('#link-url')).trim();
  const ctx = await newContext(browser, 'patient', log, { baseURL: server.url, ...context });
  const patient = await ctx.newPage();
  // Awaited: an init script (a recorder) added after `goto` started may miss the page.
  await onPage?.(patient);
  await patient.goto(new URL(new URL(joinUrl).pathname, server.url).href);
  if (ref) await (onIdentity ? onIdentity(patient) : confirmBirthDate(patient, born));
  await patient.click('#start-check');
  await patient.waitForSelector('#s-check:not([hidden])');
  await patient.waitForFunction(() => !/…/.test(document.querySelector('#net-result').textContent), null, { timeout: 15000 });
  // The page asks the patient's own name, prefilled with the link's; `gives` types another.
  if (gives !== undefined) await patient.fill('#p-name', gives);
  await patient.click('#to-waiting');
  await patient.waitForSelector('#s-waiting:not([hidden])');
  const entry = doc.locator('.queue li', { hasText: gives || name });
  await entry.waitFor();
  return { patient, visit: await entry.getAttribute('data-visit') };
}

/** The patient page asks for the date of birth (the link names a record): type it, go on. */
export async function confirmBirthDate(patient, born) {
  await patient.waitForSelector('#s-identity:not([hidden])');
  await patient.fill('#birth-date', born);
  await patient.click('#identity-submit');
  await patient.waitForSelector('#s-welcome:not([hidden])');
}
