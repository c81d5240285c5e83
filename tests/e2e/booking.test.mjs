// Issue 21, booking: a patient on a phone books an appointment in Spanish, gets the code by
// e-mail (a real SMTP server process: tests/mail-server/serve.py, aiosmtpd), confirms it,
// receives the confirmation, follows its link at the appointment time, waits, and is
// admitted. The physician sets the schedule on the dashboard with two visit types (the
// patient books the shorter one), moves the appointment to another free time from the
// dashboard (the patient is told by mail), and sees the booked patient marked in the queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { axe, shoot, startServer, setUpClinic, signInIfAsked, browserFor, steps, newContext, PHONE } from './support.mjs';

const ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

/** A plain SMTP server on loopback storing each message in a Maildir; `stop()` ends it. */
async function smtpServer(t) {
  const python = process.env.EXAMROOM_TEST_SMTP_PYTHON || path.join(ROOT, '.cache/mail/venv/bin/python');
  if (!existsSync(python)) throw new Error(`no SMTP test server: run scripts/mail-test-server (looked for ${python})`);
  const maildir = mkdtempSync(path.join(os.tmpdir(), 'examroom-mail-'));
  const child = spawn(python, [path.join(ROOT, 'tests/mail-server/serve.py'), '--maildir', maildir, '--tls', 'none'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    lines.on('line', (l) => { const m = l.match(/^listening (\d+)/); if (m) resolve(Number(m[1])); });
    child.once('exit', (c) => reject(new Error(`the SMTP server exited (${c})`)));
  });
  return { port, maildir };
}

/** Decoded subject and the raw text of each message to `to`, oldest first. */
function messagesTo(maildir, to) {
  const dir = path.join(maildir, 'new');
  return readdirSync(dir).sort().map((f) => readFileSync(path.join(dir, f), 'utf8'))
    .filter((raw) => raw.toLowerCase().includes(`x-rcptto: ${to}`))
    .map((raw) => ({ raw, subject: subjectOf(raw), text: raw.replace(/=\r?\n/g, '') }));
}

function subjectOf(raw) {
  const line = raw.split(/\r?\n(?![ \t])/).find((l) => /^subject:/i.test(l)) || '';
  // RFC 2047: the space between two encoded words is not text; any other space is.
  return line.replace(/^subject:\s*/i, '').replace(/\r?\n[ \t]/g, ' ').replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_, enc, s) => (enc.toLowerCase() === 'b'
      ? Buffer.from(s, 'base64').toString('utf8')
      : Buffer.from(s.replace(/_/g, ' ').replace(/=([0-9a-f]{2})/gi, (__, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8')));
}

async function waitFor(fn, what, ms = 15000) {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a patient books on a phone in Spanish, confirms by mail, joins at the time and is admitted', { timeout: 240000 }, async (t) => {
  const log = [];
  const mail = await smtpServer(t);
  const server = await startServer({
    EXAMROOM__MAIL__HOST: '127.0.0.1',
    EXAMROOM__MAIL__PORT: String(mail.port),
    EXAMROOM__MAIL__TLS: 'none',
    EXAMROOM__MAIL__FROM_ADDRESS: 'citas@clinic.test',
    EXAMROOM__CLINIC__NAME: 'Clínica Sol',
    // The first free time is within half an hour: its join link opens up to two hours before.
    EXAMROOM__APPOINTMENTS__JOIN_BEFORE_MINS: '120',
  });
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  const step = steps(t);
  const violations = [];
  const email = 'ana.ruiz@example.org';
  let doc; let patient; let joinPath;

  await step('the physician sets her hours on the dashboard', async () => {
    ({ doc } = await setUpClinic(browser, server, log, { physician: 'Dra. Elena Vega', email: 'vega@clinic.test', room: 'Consulta Vega' }));
    await doc.click('#appt-schedule summary');
    await doc.fill('#appt-zone', 'Europe/Madrid');
    for (const d of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) await doc.fill(`#appt-day-${d}`, '00:00-23:59');
    await doc.fill('#appt-types', 'primera, Primera visita, 40\nseguimiento, Seguimiento, 20');
    await doc.click('#appt-schedule-form button[type=submit]');
    await doc.waitForFunction(() => document.querySelector('#appt-error').textContent.length > 0);
    assert.equal(await doc.textContent('#appt-error'), 'Schedule saved.');
  });

  await step('the patient picks a time on a phone, in Spanish, and gets a code by e-mail', async () => {
    const ctx = await newContext(browser, 'patient', log, { baseURL: server.url, viewport: PHONE, locale: 'es-ES', isMobile: true, hasTouch: true });
    patient = await ctx.newPage();
    await patient.goto('/book');
    await patient.waitForSelector('button.slot');
    assert.equal(await patient.textContent('#pick-h'), 'Pedir cita');
    // Two visit types: the first (40 minutes) is offered until the patient picks the other.
    const length = () => patient.evaluate(() => { const b = document.querySelector('button.slot'); return b && (b.dataset.end - b.dataset.start) / 60000; });
    assert.equal(await length(), 40);
    violations.push(...await axe(patient, 'booking page'));
    await shoot(patient, 'booking');
    await patient.setViewportSize(PHONE);
    await patient.selectOption('select.visit-type', 'seguimiento');
    await patient.waitForFunction(() => { const b = document.querySelector('button.slot'); return b && b.dataset.end - b.dataset.start === 20 * 60000; });
    await patient.click('button.slot >> nth=0');
    assert.match(await patient.textContent('#chosen'), /Seguimiento \(20 min\)/);
    await patient.fill('#name', 'Ana Ruiz');
    await patient.fill('#email', email);
    await patient.fill('#birth-date', '1980-04-23');
    await patient.fill('#reason', 'Erupción en el brazo');
    await patient.check('#consent');
    violations.push(...await axe(patient, 'booking form'));
    await patient.click('#book-submit');
    await patient.waitForSelector('#s-code:not([hidden])');
    assert.match(await patient.textContent('#code-sent'), /correo/);
  });

  await step('the code from the mail confirms the booking; the confirmation mail follows', async () => {
    const [codeMail] = await waitFor(() => { const m = messagesTo(mail.maildir, email); return m.length ? m : null; }, 'the code mail');
    const code = codeMail.subject.match(/(\d{6})\s*$/)?.[1];
    assert.ok(code, `a code in the subject ${codeMail.subject}`);
    assert.match(codeMail.subject, /^Tu código de confirmación/);
    assert.doesNotMatch(codeMail.text, /Erupci/);
    await patient.fill('#code', code);
    await patient.click('#code-submit');
    await patient.waitForSelector('#s-done:not([hidden])');
    assert.match(await patient.textContent('#done-when'), /Dra\. Elena Vega/);
    joinPath = await patient.getAttribute('#join-link', 'href');
    const confirmation = await waitFor(() => messagesTo(mail.maildir, email)[1], 'the confirmation mail');
    assert.match(confirmation.subject, /^Cita reservada/);
    assert.ok(confirmation.text.includes(joinPath), 'the mail carries the join link');
    assert.match(confirmation.raw, /text\/calendar/);
    assert.doesNotMatch(confirmation.text, /Erupci/);
    await shoot(patient, 'booking-done');
    await patient.setViewportSize(PHONE);
    const manage = await patient.context().newPage();
    await manage.goto(await patient.getAttribute('#manage-link', 'href'));
    await manage.waitForSelector('#s-view:not([hidden])');
    await shoot(manage, 'manage');
    await manage.close();
  });

  await step('the physician moves the follow-up to another free time from the dashboard; the patient is told', async () => {
    await doc.reload();
    await signInIfAsked(doc, 'vega@clinic.test');
    const entry = doc.locator('#appt-list li.appt', { hasText: 'Ana Ruiz' });
    await entry.waitFor();
    assert.match(await entry.textContent(), /Seguimiento · Ana Ruiz/);
    const before = await entry.locator('strong').textContent();
    await entry.locator('.appt-move').click();
    const target = entry.locator('.appt-slot').first();
    await target.waitFor();
    const label = await target.textContent();
    assert.notEqual(label, before, 'the time it holds is not offered');
    await target.click();
    await doc.waitForFunction((want) => document.querySelector('#appt-list li.appt strong')?.textContent === want, label);
    const moved = await waitFor(() => messagesTo(mail.maildir, email)[2], 'the moved mail');
    assert.match(moved.subject, /^Cita cambiada/);
  });

  await step('at the appointment time the link from the mail opens the waiting room; the physician admits', async () => {
    await patient.goto(joinPath);
    await patient.click('#start-check');
    await patient.waitForSelector('#s-check:not([hidden])');
    await patient.waitForFunction(() => !/…/.test(document.querySelector('#net-result').textContent), null, { timeout: 15000 });
    await patient.click('#to-waiting');
    await patient.waitForSelector('#s-waiting:not([hidden])');
    const entry = doc.locator('.queue li', { hasText: 'Ana Ruiz' }).first();
    await entry.waitFor();
    // Booked, not a walk-in: the entry carries the booked time and reason.
    await entry.locator('.appt-booked').waitFor();
    assert.match(await entry.locator('.appt-booked').textContent(), /Erupción en el brazo/);
    await shoot(doc, 'appointments', { before: (p) => p.locator('#appt-card').scrollIntoViewIfNeeded() });
    const visit = await entry.getAttribute('data-visit');
    await doc.click(`#admit-${visit}`);
    // On a phone the call fills the screen (its section has no box of its own): wait for
    // the section to be shown and for what it says.
    await patient.waitForSelector('#s-call:not([hidden])', { state: 'attached' });
    await patient.waitForFunction(() => /Dra\. Elena Vega/.test(document.querySelector('#call-with').textContent));
    await doc.waitForSelector('#visit:not([hidden])');
  });

  await step('no accessibility violations', () => {
    assert.deepEqual(violations, []);
  });
});
