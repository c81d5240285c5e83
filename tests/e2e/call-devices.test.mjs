// Issue 19, the call itself: camera, microphone and speaker pickers before the call (the
// patient's check page) and during it (both sides), the physician's screen sharing (the
// patient sees the screen instead of the camera, then the camera again), and the unread
// count on the phone's folded chat. Chromium's fake devices: one camera, two microphones,
// two speakers, and a fake screen for getDisplayMedia.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newContext, axe, shoot, setUpClinic, receivesMedia, signallingLog, callDiagnostics, PHONE, browserTest } from './support.mjs';

/** What a page sends: the label of the track on each of its senders, by kind. */
const sending = (page) => page.evaluate(() => {
  const out = { audio: [], video: [] };
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue;
    for (const s of pc.getSenders()) if (s.track) out[s.track.kind].push(s.track.label);
  }
  return out;
});

/**
 * The labels of the video tracks the page sends, once they are `want` (a list, or a test of
 * the list) or after 5 s, to fail with what they are: `replaceTrack` settles after the
 * button's state has changed.
 */
const sendingVideo = async (page, want) => {
  const ok = typeof want === 'function' ? want : (v) => JSON.stringify(v) === JSON.stringify(want);
  const t0 = Date.now();
  let video = (await sending(page)).video;
  while (!ok(video) && Date.now() - t0 < 5000) {
    await page.waitForTimeout(50);
    video = (await sending(page)).video;
  }
  return video;
};

/** The mean colour of the remote video as the page shows it: what a person sees, roughly. */
const looksLike = (page) => page.evaluate(() => {
  const v = document.querySelector('#remotes video');
  if (!v || !v.videoWidth) return null;
  const c = Object.assign(document.createElement('canvas'), { width: 32, height: 18 });
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, 32, 18);
  const d = g.getImageData(0, 0, 32, 18).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
  return sum.map((x) => Math.round(x / (d.length / 4)));
});

test('device pickers before and during the call, screen sharing, unread chat on a phone', { timeout: 240000 }, async (t) => {
  const { log, server, browser, step: run } = await browserTest(t);
  const signalling = [];
  // A failed step prints both sides' peer connections and the last signalling messages.
  const step = (name, fn) => run(name, async () => {
    try { await fn(); } catch (e) {
      if (doc && patient) console.log(await callDiagnostics({ physician: doc, patient }, signalling));
      throw e;
    }
  });
  const violations = [];
  let doc; let patient; let visit; let camera;

  await step('the patient picks a microphone on the check page', async () => {
    ({ doc } = await setUpClinic(browser, server, log));
    signallingLog(doc, 'physician', signalling);
    await doc.waitForSelector('#link-room option', { state: 'attached' });
    await doc.fill('#link-name', 'Lee Park');
    await doc.click('#link-form button[type=submit]');
    await doc.waitForSelector('#link-out:not([hidden])');
    const url = (await doc.textContent('#link-url')).trim();
    const ctx = await newContext(browser, 'patient', log, { baseURL: server.url, viewport: PHONE });
    patient = await ctx.newPage();
    signallingLog(patient, 'patient', signalling);
    await patient.goto(new URL(url).pathname);
    await patient.click('#start-check');
    const mic = patient.locator('#check-dev-audioinput');
    await mic.waitFor();
    const options = await mic.locator('option').allTextContents();
    assert.ok(options.length >= 2, `microphones offered: ${options}`);
    assert.equal(await patient.isVisible('#check-dev-videoinput'), true, 'a camera picker');
    assert.equal(await patient.isVisible('#check-dev-audiooutput'), true, 'a speaker picker (setSinkId)');
    const picked = options[await mic.evaluate((s) => s.selectedIndex)];
    const other = options.find((o) => o !== picked);
    await mic.selectOption({ label: other });
    await patient.waitForFunction((want) => document.querySelector('#preview').srcObject?.getAudioTracks()[0]?.label === want, other);
    violations.push(...await axe(patient, 'patient check with device pickers'));
    await shoot(patient, 'patient-check-devices', { before: (p) => p.locator('#check-devices').scrollIntoViewIfNeeded() });
    await patient.setViewportSize(PHONE);
    await patient.waitForFunction(() => !/…/.test(document.querySelector('#net-result').textContent), null, { timeout: 15000 });
    await patient.click('#to-waiting');
    await patient.waitForSelector('#s-waiting:not([hidden])');
    const entry = doc.locator('.queue li', { hasText: 'Lee Park' });
    await entry.waitFor();
    visit = await entry.getAttribute('data-visit');
  });

  await step('in the call, the patient sends the microphone they picked', async () => {
    await doc.click(`#admit-${visit}`);
    // On a phone every part of the call is fixed to the screen: the section itself has no size.
    await patient.waitForSelector('#s-call:not([hidden])', { state: 'attached' });
    await receivesMedia(doc);
    await receivesMedia(patient);
    const sent = await sending(patient);
    assert.deepEqual(sent.audio, [await patient.evaluate(() => document.querySelector('#self').srcObject.getAudioTracks()[0].label)]);
    assert.match(sent.audio[0], /Fake Audio Input [12]/);
  });

  await step('the physician switches microphone and speaker mid-call; the call goes on', async () => {
    await doc.click('#devices summary');
    const mic = doc.locator('#dev-audioinput');
    await mic.waitFor();
    const before = (await sending(doc)).audio[0];
    const other = (await mic.locator('option').allTextContents()).find((o) => o !== before);
    await mic.selectOption({ label: other });
    await doc.waitForFunction((want) => (window.__pcs || []).some((pc) => pc.connectionState !== 'closed' && pc.getSenders().some((s) => s.track?.label === want)), other);
    assert.deepEqual((await sending(doc)).audio, [other], 'replaced on the peer connection, not added');
    await receivesMedia(patient);

    const speaker = doc.locator('#dev-audiooutput');
    const sinks = await speaker.locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(sinks.length >= 2, `speakers: ${sinks.length}`);
    await speaker.selectOption(sinks[1]);
    await doc.waitForFunction((id) => document.querySelector('#remotes video')?.sinkId === id, sinks[1]);
    // Remembered for the next visit on this browser.
    assert.equal(await doc.evaluate(() => JSON.parse(localStorage.getItem('examroom.devices')).audiooutput), sinks[1]);
    violations.push(...await axe(doc, 'dashboard call with device pickers'));
    await shoot(doc, 'dashboard-call-devices', { before: (p) => p.locator('#devices').scrollIntoViewIfNeeded() });
  });

  await step('the physician shares the screen: the real picker, then the patient sees it, then the camera again', async () => {
    camera = (await sending(doc)).video[0];
    // Chromium's real getDisplayMedia (a fake screen here): the screen replaces the camera on the sender.
    await doc.click('#share');
    await doc.waitForFunction(() => document.querySelector('#share').getAttribute('aria-pressed') === 'true');
    assert.equal((await doc.textContent('#share')).trim(), 'Stop sharing');
    const sent = await sendingVideo(doc, (v) => v.some((label) => label.startsWith('screen:')));
    assert.equal(sent.length, 1, 'one video sender: replaced, not added');
    assert.match(sent[0], /^screen:/);
    await doc.click('#share');
    await doc.waitForFunction(() => document.querySelector('#share').getAttribute('aria-pressed') === 'false');
    assert.deepEqual(await sendingVideo(doc, [camera]), [camera], 'the camera again');

    // Headless Chromium paints its fake screen like its fake camera; to see that the patient
    // gets the screen, this "screen" is magenta (a canvas stream in place of the OS picker).
    await doc.evaluate(() => {
      navigator.mediaDevices.getDisplayMedia = async () => {
        const c = Object.assign(document.createElement('canvas'), { width: 640, height: 360 });
        const g = c.getContext('2d');
        const paint = () => { g.fillStyle = '#d0209a'; g.fillRect(0, 0, 640, 360); g.fillStyle = '#fff'; g.fillText(String(Date.now()), 10, 20); };
        paint();
        setInterval(paint, 100);
        return c.captureStream(10);
      };
    });
    await patient.waitForFunction(() => document.querySelector('#remotes video')?.videoWidth > 0);
    const cameraLook = await looksLike(patient);
    await doc.click('#share');
    await doc.waitForFunction(() => document.querySelector('#share').getAttribute('aria-pressed') === 'true');
    const magenta = (rgb) => rgb && rgb[0] > 150 && rgb[1] < 90 && rgb[2] > 100;
    const t0 = Date.now();
    let look = cameraLook;
    while (!magenta(look) && Date.now() - t0 < 15000) { await patient.waitForTimeout(250); look = await looksLike(patient); }
    assert.ok(magenta(look), `the patient sees ${look}, not the shared screen (camera was ${cameraLook})`);
    assert.ok(!magenta(cameraLook));
    await shoot(patient, 'patient-sees-screen');
    await patient.setViewportSize(PHONE);
    await doc.click('#share');
    await doc.waitForFunction(() => document.querySelector('#share').getAttribute('aria-pressed') === 'false');
    assert.deepEqual(await sendingVideo(doc, [camera]), [camera]);
    const t1 = Date.now();
    while (magenta(look) && Date.now() - t1 < 15000) { await patient.waitForTimeout(250); look = await looksLike(patient); }
    assert.ok(!magenta(look), 'the camera again, for the patient too');
  });

  await step('on a phone, messages that arrive while the chat is folded are counted', async () => {
    assert.equal(await patient.isVisible('#chat-toggle'), true, 'the phone layout folds the chat');
    assert.equal(await patient.isHidden('#chat-unread'), true);
    for (const text of ['How are you feeling today?', 'Can you show me the rash?']) {
      await doc.fill('#chat-input', text);
      await doc.click('#chat-form button[type=submit]');
    }
    await patient.waitForFunction(() => document.querySelector('#chat-unread').textContent === '2');
    assert.equal(await patient.getAttribute('#chat-toggle', 'aria-label'), 'Chat, 2 new messages');
    await shoot(patient, 'patient-chat-unread');
    await patient.setViewportSize(PHONE);
    await patient.click('#chat-toggle');
    assert.equal(await patient.isHidden('#chat-unread'), true, 'read once opened');
    assert.equal(await patient.getAttribute('#chat-toggle', 'aria-label'), null);
    await patient.waitForSelector('#chat-log >> text=Can you show me the rash?');
    // Open, nothing is counted.
    await doc.fill('#chat-input', 'Thank you.');
    await doc.click('#chat-form button[type=submit]');
    await patient.waitForSelector('#chat-log >> text=Thank you.');
    assert.equal(await patient.isHidden('#chat-unread'), true);
  });

  await step('no serious or critical accessibility violations, no script errors', () => {
    assert.deepEqual(violations, []);
    assert.deepEqual(log, []);
  });
});
