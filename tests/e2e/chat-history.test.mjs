// Issue 19, chat history from the server: mid-visit the patient reloads her page, later the
// physician reloads his; each page shows the visit's earlier chat again, in order, each line
// once, with their own lines as "You" — read from the room's history, not from the tab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, startServer, setUpClinic, patientWaits, browserFor, steps } from './support.mjs';

/** The chat log as a person reads it, one string per line. */
const chatLog = (page) => page.locator('#chat-log li').allTextContents();

/** Wait until the page's chat log reads exactly `lines`, then check it stays so (no late doubles). */
async function showsExactly(page, lines) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#chat-log li')].map((li) => li.textContent);
    return JSON.stringify(got) === JSON.stringify(want);
  }, lines, { timeout: 15000 }).catch(async () => assert.deepEqual(await chatLog(page), lines));
  await page.waitForTimeout(1000);
  assert.deepEqual(await chatLog(page), lines);
}

test('chat history survives a reload of either page, from the server', { timeout: 240000 }, async (t) => {
  const log = [];
  const server = await startServer();
  t.after(() => server.stop());
  const browser = await browserFor(t, log);
  const step = steps(t);
  const violations = [];
  let doc; let patient; let visit;

  await step('the patient is admitted and they chat', async () => {
    ({ doc } = await setUpClinic(browser, server, log));
    ({ patient, visit } = await patientWaits(browser, server, doc, log, { name: 'Lee Park' }));
    await doc.click(`#admit-${visit}`);
    await patient.waitForSelector('#s-call:not([hidden])');
    await doc.waitForSelector('#visit:not([hidden])');
    await patient.fill('#chat-input', 'Hola, doctor');
    await patient.press('#chat-input', 'Enter');
    await doc.waitForSelector('#chat-log >> text=Hola, doctor');
    await doc.fill('#chat-input', 'How long have you had the cough?');
    await doc.click('#chat-form button[type=submit]');
    await patient.waitForSelector('#chat-log >> text=How long have you had the cough?');
    await patient.fill('#chat-input', 'Two weeks');
    await patient.press('#chat-input', 'Enter');
    await doc.waitForSelector('#chat-log >> text=Two weeks');
  });

  await step('the patient reloads mid-visit: her chat is back, in order, once', async () => {
    await patient.reload();
    await patient.waitForSelector('#s-call:not([hidden])');
    await showsExactly(patient, [
      'You: Hola, doctor',
      'Dr Meredith Grey: How long have you had the cough?',
      'You: Two weeks',
    ]);
    // The physician's page was not reloaded: it shows each line once too.
    await showsExactly(doc, [
      'Lee Park: Hola, doctor',
      'You: How long have you had the cough?',
      'Lee Park: Two weeks',
    ]);
    violations.push(...await axe(patient, 'patient call after a reload'));
    await shoot(patient, 'chat-history-patient', {
      tablet: true,
      before: async (p) => {
        // On a phone the chat folds over the video: open it to show what came back.
        if (await p.isVisible('#chat-toggle') && (await p.getAttribute('#chat-toggle', 'aria-expanded')) !== 'true') await p.click('#chat-toggle');
      },
    });
  });

  await step('after the reload chat goes on both ways', async () => {
    await patient.fill('#chat-input', 'It is worse at night');
    await patient.press('#chat-input', 'Enter');
    await doc.waitForSelector('#chat-log >> text=It is worse at night');
  });

  await step('the physician reloads: the same history, in order, once', async () => {
    await doc.reload();
    await doc.waitForSelector('#visit:not([hidden])');
    await showsExactly(doc, [
      'Lee Park: Hola, doctor',
      'You: How long have you had the cough?',
      'Lee Park: Two weeks',
      'Lee Park: It is worse at night',
    ]);
    await showsExactly(patient, [
      'You: Hola, doctor',
      'Dr Meredith Grey: How long have you had the cough?',
      'You: Two weeks',
      'You: It is worse at night',
    ]);
    violations.push(...await axe(doc, 'dashboard call after a reload'));
    await shoot(doc, 'chat-history-dashboard', { tablet: true, before: (p) => p.locator('#chat-log').scrollIntoViewIfNeeded() });
  });

  await step('no accessibility violations', async () => {
    assert.deepEqual(violations, []);
  });
});
