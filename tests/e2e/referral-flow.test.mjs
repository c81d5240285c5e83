// Issue 22, referrals end to end, in three browsers. With `serve --demo`, demo-patient-1 is
// Avery Demo Testperson (born 1968-04-17).
// - Dra. Vega lists herself in the directory as a cardiologist ("My directory profile")
//   and opens her hours for appointments.
// - Dr Grey sees Avery; beside the call he could refer (the form offers Dra. Vega); he ends
//   the visit, writes the note, and under it refers Avery to Dra. Vega with a reason and
//   an urgency.
// - Dra. Vega finds the referral in the Referrals inbox on her dashboard and accepts it
//   with a note; Dr Grey's sent box shows the answer and her note.
// - Avery, on the page their link opened, sees the referral and its answer (not the
//   physicians' note) and a link to book Dra. Vega; opening the link again shows the same.
// - The next visit with Avery shows the first visit's note in Dr Grey's record panel; from
//   beside that call he refers Avery again, Dra. Vega declines, and back in his lobby his
//   sent box says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, startServer, setUpClinic, addPhysician, listInDirectory, openAllDay, patientWaits, confirmBirthDate, browserFor, steps } from './support.mjs';

test('a physician refers the patient after the visit, the other accepts, the patient sees it and can book', { timeout: 360000 }, async (t) => {
  const log = [];
  const server = await startServer({}, ['--demo']);
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  const step = steps(t);
  const violations = [];
  const avery = { name: 'Avery Demo Testperson', ref: 'demo-patient-1', born: '1968-04-17' };
  const reason = 'Systolic murmur heard on the video call; echocardiogram please.';
  let admin; let grey; let vega; let patient; let joinPath; let vegaId;

  /** Avery waits on a new link; Dr Grey admits them and the record panel reads the chart. */
  const admitted = async () => {
    const waiting = await patientWaits(browser, server, grey, log, { admin, ...avery });
    await grey.click(`#admit-${waiting.visit}`);
    await grey.waitForSelector('#visit:not([hidden])');
    await grey.waitForFunction(() => /Read from the record/.test(document.querySelector('#record-status')?.textContent || ''), null, { timeout: 20000 });
    return waiting;
  };

  await step('Dra. Vega lists herself in the directory as a cardiologist and opens her hours', async () => {
    ({ admin, doc: grey } = await setUpClinic(browser, server, log));
    ({ doc: vega } = await addPhysician(browser, server, admin, log, { physician: 'Dra. Elena Vega', email: 'vega@clinic.test', room: 'Cardiología', languages: 'es, en', name: 'vega' }));
    await listInDirectory(vega, { specialties: 'Cardiology', publish: ['languages'] });
    await openAllDay(vega);
    // What the public directory shows of her, on her dashboard and to anyone who asks.
    await vega.waitForFunction(() => /Cardiology/.test(document.querySelector('#profile-preview').textContent));
    const listed = (await (await fetch(`${server.url}/api/directory`)).json()).find((l) => l.display_name === 'Dra. Elena Vega');
    assert.ok(listed, 'the directory lists Dra. Vega');
    assert.deepEqual(listed.specialties, ['Cardiology']);
    assert.deepEqual(listed.languages, ['es', 'en']);
    vegaId = listed.id;
  });

  await step('Dr Grey sees Avery; beside the call the referral form offers Dra. Vega', async () => {
    ({ patient } = await admitted());
    joinPath = new URL(patient.url()).pathname;
    await grey.click('#refer-call summary');
    await grey.locator('#refer-call-to option', { hasText: 'Dra. Elena Vega' }).waitFor({ state: 'attached' });
    const options = await grey.locator('#refer-call-to option').allTextContents();
    assert.ok(options.includes('Dra. Elena Vega — Cardiology'), `the physicians offered: ${options.join(' | ')}`);
    assert.ok(!options.some((o) => /Meredith Grey/.test(o)), 'not himself');
    assert.equal(await grey.getAttribute('#refer-call-reason', 'maxlength'), '2000');
    // The language picker relabels the form in place, the physicians' names kept.
    await grey.selectOption('#lang', 'es');
    await grey.waitForFunction(() => document.querySelector('label[for=refer-call-to]').textContent === 'Derivar a');
    assert.equal(await grey.textContent('#refer-call-urgency option[value=asap]'), 'Lo antes posible');
    assert.equal(await grey.textContent('#refer-call summary'), 'Derivar a este paciente');
    await grey.selectOption('#lang', 'en');
    await grey.waitForFunction(() => document.querySelector('label[for=refer-call-to]').textContent === 'Refer to');
    assert.equal(await grey.locator('#refer-call-to option', { hasText: 'Dra. Elena Vega — Cardiology' }).count(), 1);
  });

  await step('he ends the visit and writes the note; it reaches the record', async () => {
    await grey.click('#end-visit');
    await grey.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await grey.waitForSelector('#lobby:not([hidden])');
    await grey.fill('#note-reason', 'Palpitations for a week');
    await grey.fill('#note-findings', 'Regular pulse on camera; patient reports a murmur found years ago.');
    await grey.fill('#note-plan', 'Refer to cardiology for an echocardiogram.');
    await grey.click('#visit-note-form button[type=submit]');
    await grey.waitForFunction(() => document.querySelector('#visit-note')?.dataset.state === 'in_record', null, { timeout: 30000 });
    // Avery's page moved on to the survey; they skip it and stay on the last page.
    await patient.waitForSelector('#s-survey:not([hidden])');
    await patient.click('#survey-skip');
    await patient.waitForSelector('#s-done:not([hidden])');
  });

  await step('under the note he refers Avery to Dra. Vega, urgent, with the reason', async () => {
    await grey.click('#refer-after summary');
    await grey.locator('#refer-after-to option', { hasText: 'Dra. Elena Vega' }).waitFor({ state: 'attached' });
    await grey.selectOption('#refer-after-to', { label: 'Dra. Elena Vega — Cardiology' });
    await grey.fill('#refer-after-reason', reason);
    await grey.selectOption('#refer-after-urgency', 'urgent');
    await grey.click('#refer-after-form button[type=submit]');
    await grey.waitForFunction(() => document.querySelector('#refer-after-status').textContent.length > 0 && !/Sending/.test(document.querySelector('#refer-after-status').textContent));
    assert.equal(await grey.textContent('#refer-after-status'), 'Referred to Dra. Elena Vega (Urgent).');
    const sent = grey.locator('#ref-sent li', { hasText: 'Avery Demo Testperson' });
    await sent.waitFor();
    assert.match(await sent.textContent(), /To Dra\. Elena Vega/);
    assert.match(await sent.textContent(), /Waiting for an answer/);
    violations.push(...await axe(grey, 'dashboard, note and referral sent'));
  });

  await step('Avery\'s page shows the referral, waiting for an answer', async () => {
    const item = patient.locator('#referrals li[data-status="pending"]');
    await item.waitFor({ timeout: 30000 });
    const text = await item.textContent();
    assert.match(text, /To Dra\. Elena Vega/);
    assert.match(text, /Urgent/);
    assert.match(text, /echocardiogram please/);
    assert.equal(await item.locator('a').count(), 0, 'nothing to book before she answers');
  });

  await step('Dra. Vega finds it in her Referrals inbox and accepts it with a note', async () => {
    await vega.click('#referrals-refresh');
    const item = vega.locator('#ref-inbox li', { hasText: 'Avery Demo Testperson' });
    await item.waitFor();
    const text = await item.textContent();
    assert.match(text, /From Dr Meredith Grey/);
    assert.match(text, /Urgent/);
    assert.ok(text.includes(reason), 'the reason as Dr Grey wrote it');
    assert.equal((await vega.textContent('#referrals-new')).trim(), '1 to answer');
    const id = await item.getAttribute('data-referral');
    await vega.fill(`#ref-note-${id}`, 'Echo booked; I will see Avery this week.');
    await vega.click(`#ref-accept-${id}`);
    const answered = vega.locator(`#ref-inbox li[data-referral="${id}"][data-status="accepted"]`);
    await answered.waitFor();
    assert.match(await answered.textContent(), /Your note: Echo booked/);
    assert.equal((await vega.textContent('#referrals-new')).trim(), '');
    assert.equal(await vega.evaluate((rid) => document.activeElement?.dataset?.referral, id), id, 'the focus stays on the referral answered');
    violations.push(...await axe(vega, 'dashboard, referral accepted'));
    await shoot(vega, 'referrals', { before: (p) => p.locator('#referrals').scrollIntoViewIfNeeded() });
    await grey.click('#referrals-refresh');
    const sent = grey.locator('#ref-sent li[data-status="accepted"]', { hasText: 'Avery Demo Testperson' });
    await sent.waitFor();
    assert.match(await sent.textContent(), /Dra\. Elena Vega's note: Echo booked/);
  });

  await step('Avery sees the answer and a link to book Dra. Vega, then again through the link', async () => {
    const item = patient.locator('#referrals li[data-status="accepted"]');
    await item.waitFor({ timeout: 30000 });
    const text = await item.textContent();
    assert.match(text, /Dra\. Elena Vega accepted the referral/);
    assert.doesNotMatch(text, /Echo booked/, 'the physicians\' note is theirs');
    const book = item.getByRole('link', { name: 'Book an appointment with Dra. Elena Vega' });
    assert.equal(new URL(await book.getAttribute('href')).search, `?physician=${vegaId}`);
    violations.push(...await axe(patient, 'patient page, referral accepted'));
    await shoot(patient, 'patient-referral', { before: (p) => p.locator('#referrals').scrollIntoViewIfNeeded() });
    // Later, from the link: the same referral and answer.
    await patient.goto(joinPath);
    await patient.waitForSelector('#s-identity:not([hidden]), #s-welcome:not([hidden])');
    if (await patient.isVisible('#s-identity')) await confirmBirthDate(patient, avery.born);
    const again = patient.locator('#referrals li[data-status="accepted"]');
    await again.waitFor({ timeout: 15000 });
    assert.match(await again.textContent(), /Dra\. Elena Vega accepted the referral/);
    await again.getByRole('link', { name: 'Book an appointment with Dra. Elena Vega' }).click();
    await patient.waitForURL((u) => u.pathname === '/book' && u.searchParams.get('physician') === vegaId);
  });

  await step('the next visit with Avery shows the first visit\'s note in the record panel', async () => {
    await grey.click('#visit-note button.secondary');
    await admitted();
    const note = grey.locator('#record .visit-note-text', { hasText: 'Refer to cardiology' });
    await note.waitFor({ timeout: 20000 });
    assert.match(await note.textContent(), /Reason:\s*Palpitations for a week/);
  });

  await step('beside the call he refers again; Dra. Vega declines, and his sent box says so', async () => {
    await grey.click('#refer-call summary');
    await grey.locator('#refer-call-to option', { hasText: 'Dra. Elena Vega' }).waitFor({ state: 'attached' });
    // Nobody picked: said on the page, nothing sent.
    await grey.fill('#refer-call-reason', 'Second opinion on the murmur.');
    await grey.click('#refer-call-form button[type=submit]');
    assert.equal(await grey.textContent('#refer-call-status'), 'Choose the physician to refer to.');
    assert.equal(await grey.evaluate(() => document.activeElement.id), 'refer-call-to');
    await grey.selectOption('#refer-call-to', { label: 'Dra. Elena Vega — Cardiology' });
    await grey.click('#refer-call-form button[type=submit]');
    await grey.waitForFunction(() => /Referred to/.test(document.querySelector('#refer-call-status').textContent));
    assert.equal(await grey.textContent('#refer-call-status'), 'Referred to Dra. Elena Vega (Routine).');
    await vega.click('#referrals-refresh');
    const item = vega.locator('#ref-inbox li[data-status="pending"]', { hasText: 'Second opinion' });
    await item.waitFor();
    const id = await item.getAttribute('data-referral');
    await vega.fill(`#ref-note-${id}`, 'I saw Avery last week; no need.');
    await vega.click(`#ref-decline-${id}`);
    await vega.locator(`#ref-inbox li[data-referral="${id}"][data-status="declined"]`).waitFor();
    // Back in his lobby after the call.
    await grey.click('#end-visit');
    await grey.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await grey.waitForSelector('#lobby:not([hidden])');
    await grey.click('#referrals-refresh');
    const sent = grey.locator(`#ref-sent li[data-referral="${id}"][data-status="declined"]`);
    await sent.waitFor();
    assert.match(await sent.textContent(), /Declined/);
    assert.match(await sent.textContent(), /I saw Avery last week; no need\./);
  });

  await step('no accessibility violations and no script errors', () => {
    assert.deepEqual(violations, []);
    assert.deepEqual(log.filter((l) => /page error/.test(l)), []);
  });
});
