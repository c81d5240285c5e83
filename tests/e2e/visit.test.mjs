// A whole visit through the real server in real Chromium: the first admin sets up a room
// and a physician; the admin mints a join link naming her record (the physician may not);
// the patient confirms her date of birth, checks devices, waits, is
// admitted; both receive each other's media; chat, a patient reload mid-call, the end, the
// survey, and the admin console's history and NPS. Every page is scanned with axe-core and
// photographed at phone and desktop size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newContext, receivesMedia, axe, shoot, setupLinkFromLog, signInIfAsked, signallingLog, callDiagnostics, widthAt320, BASE, PASSWORD, PHONE, DESKTOP, browserFor, steps } from './support.mjs';

test('a telehealth visit end to end', { timeout: 240000 }, async (t) => {
  const log = [];
  const violations = [];
  const browser = await browserFor(t, log);
  const adminCtx = await newContext(browser, 'admin', log);
  const docCtx = await newContext(browser, 'physician', log);
  const patientCtx = await newContext(browser, 'patient', log);
  const admin = await adminCtx.newPage();
  const doc = await docCtx.newPage();
  const patient = await patientCtx.newPage();
  const signalling = [];
  signallingLog(doc, 'physician', signalling);
  signallingLog(patient, 'patient', signalling);
  // A call step that fails says what each peer connection was doing and who said what.
  const bothReceiveMedia = async () => {
    try {
      await receivesMedia(patient);
      await receivesMedia(doc);
    } catch (e) {
      e.message += `\n${await callDiagnostics({ physician: doc, patient }, signalling)}`;
      throw e;
    }
  };
  let invitation; let joinUrl; let visit;
  // Steps run in order; once one fails the rest are skipped rather than each timing out.
  const step = steps(t);

  await step('the first admin sets up their account from the link in the server log', async () => {
    await admin.goto(await setupLinkFromLog());
    await admin.fill('#email', 'admin@clinic.test');
    await admin.fill('#name', 'Ada Admin');
    await shoot(admin, 'setup');
    violations.push(...await axe(admin, 'setup'));
    await admin.fill('#password', PASSWORD);
    await admin.fill('#password2', PASSWORD);
    await admin.click('button[type=submit]');
    await admin.waitForSelector('#setup-done:not([hidden])');
  });

  await step('the admin invites a physician and creates a room for them', async () => {
    await admin.goto('/admin');
    await signInIfAsked(admin, 'admin@clinic.test');
    await admin.click('#tab-staff');
    await admin.fill('#staff-email', 'grey@clinic.test');
    await admin.fill('#staff-name', 'Dr Meredith Grey');
    await admin.click('#staff-form button[type=submit]');
    await admin.waitForSelector('#staff-out:not([hidden])');
    invitation = (await admin.textContent('#staff-url')).trim();
    assert.match(invitation, /\/setup\//);
    await admin.click('#tab-rooms');
    await admin.fill('#room-name', 'Family medicine');
    await admin.getByLabel('Dr Meredith Grey').check();
    await admin.click('#room-save');
    await admin.waitForSelector('#rooms-body >> text=Family medicine');
    violations.push(...await axe(admin, 'admin rooms'));
    await shoot(admin, 'admin-rooms');
  });

  await step('the physician accepts the invitation and signs in', async () => {
    await doc.goto(invitation);
    // The invitation says whom it is for: the e-mail read-only, the name already there.
    await doc.waitForSelector('#email[readonly]');
    assert.equal(await doc.inputValue('#email'), 'grey@clinic.test');
    assert.equal(await doc.inputValue('#name'), 'Dr Meredith Grey');
    await doc.fill('#password', PASSWORD);
    await doc.fill('#password2', PASSWORD);
    await doc.click('button[type=submit]');
    await doc.waitForSelector('#setup-done:not([hidden])');
    await doc.goto('/dashboard');
    await signInIfAsked(doc, 'grey@clinic.test');
    await doc.waitForSelector('#link-room option', { state: 'attached' });
  });

  await step('a physician cannot put a patient record on their own link', async () => {
    await doc.fill('#link-name', 'Someone Else');
    await doc.fill('#link-ref', 'demo-patient-2');
    await doc.click('#link-form button[type=submit]');
    await doc.waitForFunction(() => /admin/i.test(document.querySelector('#link-error').textContent));
    assert.equal(await doc.isHidden('#link-out'), true);
    await doc.fill('#link-name', '');
    await doc.fill('#link-ref', '');
  });

  await step('the admin mints the patient join link with her record id', async () => {
    await admin.click('#tab-links');
    await admin.waitForSelector('#links-room option', { state: 'attached' });
    await admin.fill('#link-name', 'Avery Testperson');
    // A synthetic patient of `serve --demo` (scripts/browser-test starts the server with it);
    // a server without --demo has no such record and the panel step below fails.
    await admin.fill('#link-ref', 'demo-patient-1');
    await admin.fill('#link-reason', 'Cough for two weeks');
    await admin.click('#link-form button[type=submit]');
    await admin.waitForSelector('#link-out:not([hidden])');
    joinUrl = (await admin.textContent('#link-url')).trim();
    assert.match(joinUrl, /\/join\//);
    violations.push(...await axe(admin, 'admin links'));
  });

  await step('the patient confirms her date of birth (a wrong one is refused)', async () => {
    await patient.goto(new URL(new URL(joinUrl).pathname, BASE).href);
    await patient.waitForSelector('#s-identity:not([hidden])');
    violations.push(...await axe(patient, 'patient identity'));
    await shoot(patient, 'patient-identity');
    await patient.fill('#birth-date', '1986-04-17');
    await patient.click('#identity-submit');
    await patient.waitForFunction(() => /4/.test(document.querySelector('#identity-error').textContent));
    await patient.fill('#birth-date', '1968-04-17');
    await patient.click('#identity-submit');
    await patient.waitForSelector('#s-welcome:not([hidden])');
  });

  await step('the patient checks their devices and waits; the dashboard shows them live', async () => {
    await patient.waitForSelector('#s-welcome:not([hidden])');
    violations.push(...await axe(patient, 'patient welcome'));
    await patient.click('#start-check');
    await patient.waitForSelector('#s-check:not([hidden])');
    await patient.waitForFunction(() => !/…/.test(document.querySelector('#net-result').textContent), null, { timeout: 15000 });
    violations.push(...await axe(patient, 'patient device check'));
    await shoot(patient, 'patient-check');
    await patient.click('#to-waiting');
    await patient.waitForSelector('#s-waiting:not([hidden])');
    await patient.waitForFunction(() => document.querySelector('#position').textContent === '1');
    violations.push(...await axe(patient, 'patient waiting room'));
    await shoot(patient, 'patient-waiting');

    const entry = doc.locator('.queue li', { hasText: 'Avery Testperson' });
    await entry.waitFor();
    await doc.waitForSelector('.queue li .badge.ok');
    // The device check in words: no ICE candidate types (host, srflx, prflx, relay).
    const device = await doc.textContent('.queue li .badge.ok');
    assert.match(device, /camera, microphone, \d+ ms/);
    assert.doesNotMatch(device, /\b(host|srflx|prflx|relay)\b/);
    visit = await entry.getAttribute('data-visit');
    violations.push(...await axe(doc, 'dashboard queue'));
    await shoot(doc, 'dashboard-queue');
  });

  await step('the physician admits; both sides connect and receive media; the record panel shows allergies', async () => {
    await doc.click(`#admit-${visit}`);
    await patient.waitForSelector('#s-call:not([hidden])');
    await doc.waitForSelector('#visit:not([hidden])');
    await bothReceiveMedia();
    await doc.waitForSelector('#record-allergies li', { timeout: 15000 });
    const allergies = await doc.textContent('#record-allergies');
    assert.match(allergies, /penicillin/i);
    assert.match(allergies, /high criticality/i);
    violations.push(...await axe(doc, 'dashboard call'));
    violations.push(...await axe(patient, 'patient call'));
    await shoot(doc, 'dashboard-call');
    await shoot(patient, 'patient-call');
  });

  await step('chat goes both ways', async () => {
    await patient.fill('#chat-input', 'Hola, doctor');
    await patient.press('#chat-input', 'Enter');
    await doc.waitForSelector('#chat-log >> text=Hola, doctor');
    await doc.fill('#chat-input', 'How long have you had the cough?');
    await doc.click('#chat-form button[type=submit]');
    await patient.waitForSelector('#chat-log >> text=How long have you had the cough?');
  });

  await step('camera off and muted show as badges on both sides\' tiles', async () => {
    await doc.click('#camera');
    await doc.waitForSelector('.self-view .tile-badge.camera-off');
    await patient.waitForSelector('#remotes .tile-badge.camera-off');
    assert.match(await patient.textContent('#remotes .tile-badges'), /Camera off|Cámara apagada/);
    await patient.click('#mute');
    await patient.waitForSelector('.self-view .tile-badge.muted');
    await doc.waitForSelector('#remotes .tile-badge.muted');
    assert.equal((await doc.textContent('#remotes .tile-badges')).trim(), 'Muted');
    violations.push(...await axe(doc, 'dashboard call, badges'));
    await shoot(patient, 'patient-call-badges', { tablet: true });
    await doc.click('#camera');
    await patient.click('#mute');
    await patient.waitForFunction(() => !document.querySelector('#remotes .tile-badge, .self-view .tile-badge'));
    await doc.waitForFunction(() => !document.querySelector('#remotes .tile-badge, .self-view .tile-badge'));
  });

  await step('on a phone the patient\'s call fills the screen, controls over the video; nothing scrolls sideways at 320 px', async () => {
    await patient.setViewportSize(PHONE);
    await patient.waitForTimeout(300);
    const box = await patient.evaluate(() => {
      const s = document.querySelector('#stage').getBoundingClientRect();
      const c = document.querySelector('#s-call .controls').getBoundingClientRect();
      const self = document.querySelector('.self-view').getBoundingClientRect();
      return { stage: [s.left, s.top, s.width, s.height].map(Math.round), controls: [c.top, c.bottom].map(Math.round), self: [self.left, self.right].map(Math.round), vw: innerWidth, vh: innerHeight };
    });
    assert.deepEqual(box.stage, [0, 0, box.vw, box.vh], `the video fills the screen: ${JSON.stringify(box)}`);
    assert.ok(box.controls[1] === box.vh && box.controls[0] > box.vh / 2, `controls at the bottom, over the video: ${JSON.stringify(box)}`);
    assert.ok(box.self[0] >= 0 && box.self[1] <= box.vw, `the self-view is not clipped: ${JSON.stringify(box)}`);
    await patient.click('#chat-toggle');
    await patient.waitForSelector('#chat-input', { state: 'visible' });
    assert.equal(await patient.getAttribute('#chat-toggle', 'aria-expanded'), 'true');
    violations.push(...await axe(patient, 'patient call on a phone, chat open'));
    await patient.click('#chat-toggle');
    await patient.setViewportSize(DESKTOP);
    for (const [name, page] of [['patient', patient], ['physician', doc]]) {
      const w = await widthAt320(page);
      assert.ok(w.scroll <= w.width, `the ${name}'s call is ${w.scroll} px wide at ${w.width} px`);
    }
  });

  await step('the patient reloads mid-call and the call resumes', async () => {
    await patient.reload();
    await patient.waitForSelector('#s-call:not([hidden])', { timeout: 20000 });
    await bothReceiveMedia();
  });

  await step('the physician ends the visit and the patient answers the survey', async () => {
    await doc.click('#end-visit');
    await doc.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await patient.waitForSelector('#s-survey:not([hidden])');
    violations.push(...await axe(patient, 'patient survey'));
    await shoot(patient, 'patient-survey');
    await patient.click('#scale label:has-text("10")');
    await patient.fill('#survey-comment', 'Muy amable, gracias.');
    await patient.click('#survey-form button[type=submit]');
    await patient.waitForSelector('#s-done:not([hidden])');
    await doc.waitForSelector('#lobby:not([hidden])');
  });

  await step('the admin console shows the visit and the NPS', async () => {
    await admin.click('#tab-visits');
    await admin.waitForSelector(`#visits-body tr[data-visit="${visit}"]`);
    // Outcomes in words, not codes ("ended", "no_show").
    assert.match(await admin.textContent(`#visits-body tr[data-visit="${visit}"]`), /Seen/);
    // Whom the visit was for: the name on the link the admin made.
    assert.match(await admin.textContent(`#visits-body tr[data-visit="${visit}"]`), /Avery Testperson/);
    assert.doesNotMatch(await admin.textContent('#visits-body'), /\b[a-z]+_[a-z]+\b/);
    violations.push(...await axe(admin, 'admin visits'));
    await shoot(admin, 'admin-visits');
    await admin.click('#tab-experience');
    await admin.waitForSelector('#exp-figures .figure');
    await admin.waitForFunction(() => document.querySelector('#exp-figures .figure .value').textContent === '100');
    violations.push(...await axe(admin, 'admin experience'));
    await shoot(admin, 'admin-experience');
  });

  await step('no serious or critical accessibility violations on any page', () => {
    assert.deepEqual(violations, []);
  });
});
