// Issue 22, the visit written back to the patient's record. With `serve --demo`,
// demo-patient-1 is Avery Demo Testperson (born 1968-04-17).
// - The physician ends a visit; the note form appears; they write the note and save it;
//   the page says "Saved — sending to the record" and then "In the record".
// - The next visit with the same patient: the record panel lists the video visit with
//   its note.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, startServer, setUpClinic, patientWaits, browserFor, steps } from './support.mjs';

test('a physician writes the visit note; the next visit shows it', { timeout: 240000 }, async (t) => {
  const log = [];
  const server = await startServer({}, ['--demo']);
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  let admin; let doc;
  const step = steps(t);
  const avery = { name: 'Avery Demo Testperson', ref: 'demo-patient-1', born: '1968-04-17' };
  const admitted = async () => {
    const { visit } = await patientWaits(browser, server, doc, log, { admin, ...avery });
    await doc.click(`#admit-${visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    await doc.waitForFunction(() => /Read from the record/.test(document.querySelector('#record-status')?.textContent || ''), null, { timeout: 20000 });
    return visit;
  };

  await step('the physician ends the visit and writes the note; it reaches the record', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    await admitted();
    await doc.click('#end-visit');
    await doc.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await doc.waitForSelector('#lobby:not([hidden])');
    await doc.waitForSelector('#visit-note');
    // Too long a reason cannot be typed: the field holds the server's limit.
    assert.equal(await doc.getAttribute('#note-reason', 'maxlength'), '500');
    await doc.fill('#note-reason', 'Sore throat for three days');
    await doc.fill('#note-findings', 'Mild erythema of the pharynx on camera; no distress.');
    await doc.fill('#note-plan', 'Salt-water gargles; paracetamol.');
    await doc.fill('#note-follow_up', 'Call if not better in 5 days.');
    await doc.click('#visit-note-form button[type=submit]');
    await doc.waitForFunction(() => document.querySelector('#visit-note')?.dataset.state === 'in_record', null, { timeout: 30000 });
    assert.equal((await doc.textContent('#visit-note-status')).trim(), 'In the record');
    const violations = await axe(doc, 'dashboard, visit note saved');
    assert.deepEqual(violations, []);
    await shoot(doc, 'visit-note');
  });

  await step('the next visit with the same patient shows the video visit and its note', async () => {
    await doc.click('#visit-note button.secondary');
    await admitted();
    const note = doc.locator('#record .visit-note-text', { hasText: 'Salt-water gargles' });
    await note.waitFor({ timeout: 20000 });
    const text = await note.textContent();
    assert.match(text, /Reason:\s*Sore throat for three days/);
    assert.match(text, /Findings:\s*Mild erythema/);
  });
});
