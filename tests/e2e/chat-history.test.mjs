// Issue 19, chat history from the server: mid-visit the patient reloads her page, later the
// physician reloads his; each page shows the visit's earlier chat again, in order, each line
// once, with their own lines as "You" — read from the room's history, not from the tab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, setUpClinic, patientWaits, browserTest } from './support.mjs';

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
  const { log, server, browser, step, violations } = await browserTest(t);
  let doc; let patient; let visit;
  // What was said, in order: each page shows its own lines as "You".
  const said = [];
  const asPatient = () => said.map(([who, text]) => `${who === 'patient' ? 'You' : 'Dr Meredith Grey'}: ${text}`);
  const asPhysician = () => said.map(([who, text]) => `${who === 'patient' ? 'Lee Park' : 'You'}: ${text}`);
  const say = async (who, text) => {
    const [from, to] = who === 'patient' ? [patient, doc] : [doc, patient];
    await from.fill('#chat-input', text);
    await from.press('#chat-input', 'Enter');
    await to.waitForSelector(`#chat-log >> text=${text}`);
    said.push([who, text]);
  };

  await step('the patient is admitted and they chat', async () => {
    ({ doc } = await setUpClinic(browser, server, log));
    ({ patient, visit } = await patientWaits(browser, server, doc, log, { name: 'Lee Park' }));
    await doc.click(`#admit-${visit}`);
    await patient.waitForSelector('#s-call:not([hidden])');
    await doc.waitForSelector('#visit:not([hidden])');
    await say('patient', 'Hola, doctor');
    await say('physician', 'How long have you had the cough?');
    await say('patient', 'Two weeks');
  });

  await step('the patient reloads mid-visit: her chat is back, in order, once', async () => {
    await patient.reload();
    await patient.waitForSelector('#s-call:not([hidden])');
    assert.deepEqual(asPatient(), ['You: Hola, doctor', 'Dr Meredith Grey: How long have you had the cough?', 'You: Two weeks']);
    await showsExactly(patient, asPatient());
    // The physician's page was not reloaded: it shows each line once too.
    await showsExactly(doc, asPhysician());
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
    await say('patient', 'It is worse at night');
  });

  await step('the physician reloads: the same history, in order, once', async () => {
    await doc.reload();
    await doc.waitForSelector('#visit:not([hidden])');
    await showsExactly(doc, asPhysician());
    await showsExactly(patient, asPatient());
    violations.push(...await axe(doc, 'dashboard call after a reload'));
    await shoot(doc, 'chat-history-dashboard', { tablet: true, before: (p) => p.locator('#chat-log').scrollIntoViewIfNeeded() });
  });

  await step('no accessibility violations', async () => {
    assert.deepEqual(violations, []);
  });
});
