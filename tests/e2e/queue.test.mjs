// Issue 19, queue awareness: a physician looking elsewhere learns that a patient arrived —
// a chime (which they can mute), the count in the tab title, a desktop notification when
// the browser allows them (without the patient's name) — sees each wait tick by the second,
// and during a call still sees, and can message, who is waiting, in a list they can fold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, setUpClinic, patientWaits, browserTest } from './support.mjs';

// What the page played and showed: oscillators started (the chime) and notifications made.
function listen() {
  window.__chimes = 0;
  window.__notes = [];
  const Audio = window.AudioContext;
  window.AudioContext = class extends Audio {
    createOscillator() { window.__chimes += 1; return super.createOscillator(); }
  };
  const Real = window.Notification;
  function Recorded(title, options) {
    window.__notes.push({ title, body: options?.body || '' });
    return new Real(title, options);
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...a) => Real.requestPermission(...a);
  window.Notification = Recorded;
}

test('the physician notices arrivals and keeps the queue in sight during a call', { timeout: 180000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t);
  let doc; let lee; let kim;
  const heard = () => doc.evaluate(() => window.__chimes);
  const notes = () => doc.evaluate(() => window.__notes);

  await step('nobody waiting: a plain title, the arrival sound on', async () => {
    let docCtx;
    ({ doc, docCtx } = await setUpClinic(browser, server, log));
    await docCtx.grantPermissions(['notifications'], { origin: server.url });
    await docCtx.addInitScript(listen);
    await doc.reload();
    await doc.waitForSelector('#app:not([hidden])');
    await doc.waitForSelector('#rooms >> text=Nobody is waiting.');
    assert.equal(await doc.title(), 'Dashboard · examroom');
    assert.equal(await doc.getAttribute('#chime', 'aria-pressed'), 'true');
    assert.equal(await doc.isHidden('#notify'), true, 'notifications already allowed: no button to ask');
  });

  await step('a patient arrives: a chime, "(1)" in the title, a notification without their name', async () => {
    lee = await patientWaits(browser, server, doc, log, { name: 'Lee Park', reason: 'Rash' });
    await doc.waitForFunction(() => document.title === '(1) Dashboard · examroom');
    assert.ok(await heard() > 0, 'the chime played');
    const made = await notes();
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.equal(made[0].title, 'Patient waiting');
    assert.match(made[0].body, /A patient is waiting in Family medicine/);
    assert.doesNotMatch(made[0].body, /Lee|Park/, 'no patient name on the desktop');
  });

  await step('the wait ticks every second', async () => {
    const wait = doc.locator(`.queue li[data-visit="${lee.visit}"] .wait`);
    const before = await wait.textContent();
    assert.match(before, /^Waiting \d+:\d\d$/);
    await doc.waitForFunction((was) => document.querySelector('.queue .wait').textContent !== was, before, { timeout: 5000 });
  });

  await step('muted: the next arrival makes no sound, the title still counts', async () => {
    await doc.click('#chime');
    assert.equal(await doc.getAttribute('#chime', 'aria-pressed'), 'false');
    assert.equal((await doc.textContent('#chime')).trim(), 'Arrival sound off');
    const before = await heard();
    kim = await patientWaits(browser, server, doc, log, { name: 'Kim Nakamura', reason: 'Cough' });
    await doc.waitForFunction(() => document.title === '(2) Dashboard · examroom');
    assert.equal(await heard(), before, 'no chime while muted');
    assert.equal((await notes()).length, 2, 'the notification still comes');
    violations.push(...await axe(doc, 'dashboard queue with two patients'));
  });

  await step('in a call the waiting room stays beside it: seen, messaged, folded', async () => {
    await doc.click(`#admit-${lee.visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    const side = doc.locator('#call-queue');
    await side.locator('li', { hasText: 'Kim Nakamura' }).waitFor();
    assert.match(await doc.textContent('#call-queue summary'), /1 waiting/);
    assert.equal(await side.getByRole('button', { name: /admit/i }).count(), 0, 'admitting is done from the lobby, not mid-call');
    violations.push(...await axe(doc, 'dashboard call with the queue beside it'));
    await shoot(doc, 'dashboard-call-queue', { tablet: true, before: (p) => p.locator('#call-queue').scrollIntoViewIfNeeded() });
    await doc.fill(`#cq-msg-${kim.visit}`, 'Running 5 minutes late, sorry');
    await side.getByRole('button', { name: 'Send message' }).click();
    await kim.patient.waitForSelector('#physician-messages >> text=Running 5 minutes late, sorry');
    await doc.click('#call-queue summary');
    assert.equal(await side.locator('li', { hasText: 'Kim Nakamura' }).isVisible(), false, 'folded away');
    await doc.click('#call-queue summary');
    assert.equal(await side.locator('li', { hasText: 'Kim Nakamura' }).isVisible(), true);
  });

  await step('no serious or critical accessibility violations', () => {
    assert.deepEqual(violations, []);
  });
});
