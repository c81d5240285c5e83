// Issue 19, patient identity on the dashboard. With `serve --demo`:
// demo-patient-3 is Robin Exampleton (a child, born 2021-07-09), demo-patient-1 Avery Demo
// Testperson (born 1968-04-17, high-criticality penicillin allergy, a long chart),
// demo-patient-2 Jordan Samplewood (born 1999-11-30).
// - The link form empties after each link and says who the last one was for.
// - The patient page always asks the patient's own name; a link without one is no longer
//   "Admit Patient".
// - A parent joins on Robin's link and gives their own name: queue and call show both, and
//   the record panel says whose record it is and who is in the visit, and shows nothing
//   more of the chart until the physician confirms.
// - Avery's long chart: name, date of birth and the penicillin allergy stay in view while
//   the physician scrolls to the bottom.
// - The next visit opens its panel at the top, not where the previous patient's was left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newContext, axe, shoot, startServer, setUpClinic, patientWaits, browserFor, steps } from './support.mjs';

test('the record panel shows whose chart it is before anything else', { timeout: 240000 }, async (t) => {
  const log = [];
  const server = await startServer({}, ['--demo']);
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  let admin; let doc; let nameless;
  const step = steps(t);
  const violations = [];
  // `inQueue(visit)` looks at the queue before the admit.
  const admitted = async (patient, inQueue) => {
    const { visit } = await patientWaits(browser, server, doc, log, { admin, ...patient });
    await inQueue?.(visit);
    await doc.click(`#admit-${visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    await doc.waitForFunction(() => /Read from the record/.test(document.querySelector('#record-status')?.textContent || ''), null, { timeout: 20000 });
  };
  const endVisit = async () => {
    await doc.click('#end-visit');
    await doc.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await doc.waitForSelector('#lobby:not([hidden])');
  };
  const panel = () => doc.evaluate(() => {
    const record = document.querySelector('#record');
    const r = record.getBoundingClientRect();
    const top = document.querySelector('#record-top');
    const s = top.getBoundingClientRect();
    // What a person sees at the strip's place: the strip itself, not the chart under it.
    const hit = document.elementFromPoint(s.left + s.width / 2, s.top + 8);
    return {
      scrollTop: record.scrollTop,
      scrollable: record.scrollHeight - record.clientHeight,
      topInPanel: s.top >= r.top - 1 && s.bottom <= r.bottom + 1,
      topSeen: !!hit && top.contains(hit),
      topText: top.textContent,
    };
  });

  await step('after "Create link" the form is empty and says who the last link was for', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    await doc.waitForSelector('#link-room option', { state: 'attached' });
    await doc.fill('#link-name', 'Lee Park');
    await doc.fill('#link-reason', 'Follow-up');
    await doc.click('#link-form button[type=submit]');
    await doc.waitForSelector('#link-out:not([hidden])');
    assert.match(await doc.textContent('#link-for'), /^For Lee Park · no patient record · reason: Follow-up · Family medicine · made at \d\d:\d\d$/);
    for (const field of ['#link-name', '#link-ref', '#link-reason']) assert.equal(await doc.inputValue(field), '', `${field} is cleared`);
    const first = (await doc.textContent('#link-url')).trim();
    await doc.click('#link-form button[type=submit]');
    await doc.waitForFunction((prev) => document.querySelector('#link-url').textContent.trim() !== prev, first);
    assert.match(await doc.textContent('#link-for'), /^For a patient who will give their name · no patient record · Family medicine/);
    violations.push(...await axe(doc, 'dashboard, link made'));
    await shoot(doc, 'dashboard-link-made', { tablet: true });
    nameless = (await doc.textContent('#link-url')).trim();
  });

  await step('a link without a name: the patient is asked theirs, and the queue shows it', async () => {
    const ctx = await newContext(browser, 'patient', log, { baseURL: server.url, locale: 'es-ES' });
    const patient = await ctx.newPage();
    await patient.goto(new URL(new URL(nameless).pathname, server.url).href);
    await patient.click('#start-check');
    await patient.waitForSelector('#s-check:not([hidden])');
    await patient.waitForSelector('#p-name', { state: 'visible' });
    assert.equal(await patient.inputValue('#p-name'), '');
    assert.match(await patient.textContent('#p-name-hint'), /propio nombre/, 'in Spanish for a Spanish browser');
    await patient.waitForFunction(() => !/…/.test(document.querySelector('#net-result').textContent), null, { timeout: 15000 });
    await patient.click('#to-waiting');
    assert.match(await patient.textContent('#profile-error'), /nombre/);
    await patient.fill('#p-name', 'Kim Nakamura');
    await patient.click('#to-waiting');
    await patient.waitForSelector('#s-waiting:not([hidden])');
    const entry = doc.locator('.queue li', { hasText: 'Kim Nakamura' });
    await entry.waitFor();
    assert.equal(await entry.locator('.linked-name').count(), 0, 'no other name to show');
    violations.push(...await axe(patient, 'patient device check, name asked (Spanish)'));
  });

  await step('a parent joins on their child\'s link: queue and call show both names', async () => {
    await admitted({ name: 'Robin Exampleton', gives: 'Sam Exampleton', ref: 'demo-patient-3', born: '2021-07-09', reason: 'Fever' }, async (visit) => {
      const entry = doc.locator(`.queue li[data-visit="${visit}"]`);
      assert.match(await entry.locator('.who').textContent(), /Sam Exampleton/);
      assert.match(await entry.locator('.linked-name').textContent(), /link made for Robin Exampleton/);
      violations.push(...await axe(doc, 'dashboard queue, two names'));
      await shoot(doc, 'dashboard-queue-names', { tablet: true });
    });
    assert.equal(await doc.textContent('#visit-h'), 'Visit with Sam Exampleton (link made for Robin Exampleton)');
    // The admin's link form (used for this record link) is empty again, and says what it made.
    assert.equal(await admin.inputValue('#link-ref'), '');
    assert.equal(await admin.inputValue('#link-name'), '');
    assert.match(await admin.textContent('#link-for'), /^For Robin Exampleton · record demo-patient-3 · reason: Fever · Family medicine/);
  });

  await step('the record is in another name than the patient gave: the panel asks the physician to check first', async () => {
    const warning = await doc.textContent('#record-mismatch');
    assert.match(warning, /Check who this is/);
    assert.match(warning, /Robin Exampleton, born 2021-07-09/);
    assert.match(warning, /Patient in this visit: “Sam Exampleton”/);
    assert.equal(await doc.getAttribute('#record-mismatch', 'role'), 'alert');
    // Who the record is for shows; the chart does not.
    assert.match(await doc.textContent('#record-top'), /Robin Exampleton[\s\S]*born 2021-07-09/);
    assert.equal(await doc.locator('#record section').count(), 0, 'no chart section before the physician confirms');
    assert.doesNotMatch(await doc.textContent('#record'), /DTaP|MMR|Well child/);
    violations.push(...await axe(doc, 'record panel, name mismatch'));
    await shoot(doc, 'dashboard-record-mismatch', { tablet: true, before: (p) => p.locator('#record').scrollIntoViewIfNeeded() });
  });

  await step('the physician confirms: the chart shows, and the panel still says whose it is', async () => {
    await doc.click('#record-confirm');
    await doc.waitForSelector('#record-immunizations li');
    assert.match(await doc.textContent('#record-immunizations'), /DTaP/);
    const note = await doc.textContent('#record-mismatch');
    assert.match(note, /This record is for Robin Exampleton[\s\S]*“Sam Exampleton”[\s\S]*You confirmed/);
    assert.equal(await doc.evaluate(() => document.activeElement?.id), 'record-h', 'focus moves to the chart\'s heading');
    await endVisit();
  });

  await step('a long chart: name, date of birth and the high-criticality allergy stay in view at the bottom', async () => {
    await admitted({ name: 'Avery Testperson', ref: 'demo-patient-1', born: '1968-04-17', reason: 'Blood pressure review' });
    assert.equal(await doc.locator('#record-mismatch').count(), 0, 'the same person: no warning');
    const opened = await panel();
    assert.equal(opened.scrollTop, 0, 'opens at the top');
    assert.match(opened.topText, /Avery Demo Testperson[\s\S]*\d+ years[\s\S]*born 1968-04-17/);
    assert.match(opened.topText, /High-criticality allergies:[^\n]*Penicillin/i);
    await doc.evaluate(() => { const r = document.querySelector('#record'); r.scrollTop = r.scrollHeight; });
    await doc.waitForTimeout(200);
    const scrolled = await panel();
    assert.ok(scrolled.scrollable > 200, `the chart is long enough to scroll (${scrolled.scrollable} px)`);
    assert.ok(scrolled.scrollTop > 200, `scrolled down (${scrolled.scrollTop} px)`);
    assert.ok(scrolled.topInPanel && scrolled.topSeen, `the name strip is in view at the bottom: ${JSON.stringify(scrolled)}`);
    assert.match(scrolled.topText, /Avery Demo Testperson[\s\S]*born 1968-04-17[\s\S]*Penicillin/i);
    violations.push(...await axe(doc, 'record panel, scrolled'));
    await shoot(doc, 'dashboard-record-scrolled', {
      tablet: true,
      before: async (p) => {
        await p.locator('#record').scrollIntoViewIfNeeded();
        await p.evaluate(() => { const r = document.querySelector('#record'); r.scrollTop = r.scrollHeight; });
      },
    });
  });

  await step('the next patient\'s panel opens at the top, not where the last one was left', async () => {
    await doc.evaluate(() => { const r = document.querySelector('#record'); r.scrollTop = r.scrollHeight; });
    assert.ok((await panel()).scrollTop > 200);
    await endVisit();
    await admitted({ name: 'Jordan Samplewood', ref: 'demo-patient-2', born: '1999-11-30', reason: 'Asthma' });
    const opened = await panel();
    assert.equal(opened.scrollTop, 0, 'opens at the top');
    assert.ok(opened.topSeen, 'the name strip is in view');
    assert.match(opened.topText, /Jordan Samplewood[\s\S]*born 1999-11-30/);
    assert.doesNotMatch(opened.topText, /Avery|Penicillin/i, 'nothing of the previous patient');
    assert.match(opened.topText, /No known allergies recorded/);
  });

  await step('no serious or critical accessibility violations', () => {
    assert.deepEqual(violations, []);
  });
});
