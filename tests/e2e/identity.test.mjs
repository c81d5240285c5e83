// Issue 17, item 1, in the browser: a patient who cannot confirm their date of birth still
// has their video visit, but the physician's record panel stays closed ("Identity not
// confirmed") until the physician takes emergency access with a reason — which the admin
// then sees in their list. (The patient who confirms: visit.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, startServer, setUpClinic, patientWaits, browserFor, steps } from './support.mjs';

test('the chart stays closed for an unconfirmed patient until emergency access', { timeout: 180000 }, async (t) => {
  const log = [];
  // --demo: demo-patient-1 (born 1968-04-17, allergic to penicillin); two tries to keep it short.
  const server = await startServer({ EXAMROOM__LINKS__IDENTITY_ATTEMPTS: '2' }, ['--demo']);
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  let admin; let doc; let visit;
  const step = steps(t);
  const violations = [];

  await step('two wrong dates of birth: the patient is told, and goes on to the waiting room', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    ({ visit } = await patientWaits(browser, server, doc, log, {
      name: 'Avery Testperson', ref: 'demo-patient-1', reason: 'Cough', admin,
      onIdentity: async (patient) => {
        await patient.waitForSelector('#s-identity:not([hidden])');
        await patient.fill('#birth-date', '1970-01-01');
        await patient.click('#identity-submit');
        await patient.waitForFunction(() => /1/.test(document.querySelector('#identity-error').textContent));
        await patient.fill('#birth-date', '1970-01-02');
        await patient.click('#identity-submit');
        await patient.waitForSelector('#s-welcome:not([hidden])');
        assert.match(await patient.textContent('#welcome-identity'), /could not confirm/i);
      },
    }));
  });

  await step('the physician admits: the panel says "Identity not confirmed" and shows nothing of the chart', async () => {
    await doc.click(`#admit-${visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    await doc.waitForSelector('#record-identity', { timeout: 15000 });
    assert.match(await doc.textContent('#record-identity'), /Identity not confirmed/);
    assert.doesNotMatch(await doc.textContent('#record'), /penicillin/i);
    violations.push(...await axe(doc, 'record panel, identity not confirmed'));
  });

  await step('emergency access needs a reason, then opens the chart', async () => {
    await doc.click('#emergency summary');
    await doc.fill('#emergency-reason', 'urgent');
    await doc.click('#emergency-open');
    await doc.waitForFunction(() => /10 characters/.test(document.querySelector('#emergency-error').textContent));
    await doc.fill('#emergency-reason', 'Patient cannot confirm; need allergies before prescribing');
    await doc.click('#emergency-open');
    await doc.waitForSelector('#record-allergies li', { timeout: 15000 });
    assert.match(await doc.textContent('#record-allergies'), /penicillin/i);
  });

  await step('the admin sees the emergency access and its reason', async () => {
    await admin.click('#tab-links');
    await admin.waitForSelector('#emergency-body >> text=Patient cannot confirm');
    assert.match(await admin.textContent('#emergency-body'), /Dr Meredith Grey/);
    violations.push(...await axe(admin, 'admin links and emergency accesses'));
  });

  await step('no serious or critical accessibility violations', () => {
    assert.deepEqual(violations, []);
  });
});
