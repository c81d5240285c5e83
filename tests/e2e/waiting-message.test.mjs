// Issue 19, the waiting-room message per language: the admin writes the room's message in
// English and in Spanish on one form; a patient whose page is in Spanish reads the Spanish
// one, a patient in English the English one; with no Spanish message, the Spanish page
// falls back to the English (default) one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, setUpClinic, patientWaits, browserTest } from './support.mjs';

const EN = 'Dr Grey is running on time today.';
const ES = 'La Dra. Grey llega puntual hoy.';
const SPANISH = { locale: 'es-ES' };

test('the waiting-room message in the patient\'s language, else the default', { timeout: 240000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t);
  let admin; let doc; let ana;

  const editRoom = async () => {
    await admin.click('#tab-rooms');
    await admin.click('#rooms-body button:has-text("Edit")');
    await admin.waitForFunction(() => document.querySelector('#room-id').value !== '');
  };
  const saveRoom = async () => {
    await admin.click('#room-save');
    await admin.waitForFunction(() => document.querySelector('#room-id').value === '');
  };

  await step('a new room starts with the default message of each language', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    await admin.goto('/admin');
    await admin.waitForSelector('#app:not([hidden])');
    await admin.waitForFunction(() => document.querySelector('#room-message-es').value !== '');
    assert.equal(await admin.inputValue('#room-message'), 'Your doctor will be with you shortly.');
    assert.equal(await admin.inputValue('#room-message-es'), 'Su médico le atenderá en breve.');
  });

  await step('the admin writes the message in English and in Spanish', async () => {
    await editRoom();
    await admin.fill('#room-message', EN);
    await admin.getByLabel('In Spanish').fill(ES);
    violations.push(...await axe(admin, 'admin room form with messages per language'));
    await shoot(admin, 'admin-room-messages', { tablet: true, before: (p) => p.locator('#room-messages').scrollIntoViewIfNeeded() });
    await saveRoom();
    await editRoom();
    assert.equal(await admin.inputValue('#room-message'), EN);
    assert.equal(await admin.inputValue('#room-message-es'), ES);
    const rooms = await admin.evaluate(async () => (await fetch('/api/rooms')).json());
    assert.deepEqual(rooms[0].waiting_messages, { es: ES });
    assert.equal(rooms[0].waiting_message, EN);
  });

  await step('a patient whose page is in Spanish reads the Spanish message', async () => {
    ({ patient: ana } = await patientWaits(browser, server, doc, log, { name: 'Ana Ruiz', context: SPANISH }));
    assert.equal(await ana.getAttribute('html', 'lang'), 'es');
    await ana.waitForFunction((want) => document.querySelector('#room-message').textContent === want, ES);
    violations.push(...await axe(ana, 'patient waiting in Spanish'));
    await shoot(ana, 'patient-waiting-es', { tablet: true });
  });

  await step('a patient whose page is in English reads the English message', async () => {
    const { patient: lee } = await patientWaits(browser, server, doc, log, { name: 'Lee Park' });
    await lee.waitForFunction((want) => document.querySelector('#room-message').textContent === want, EN);
  });

  await step('without a Spanish message the Spanish page shows the default one', async () => {
    await editRoom();
    await admin.fill('#room-message-es', '');
    await saveRoom();
    const { patient: sofia } = await patientWaits(browser, server, doc, log, { name: 'Sofía Díaz', context: SPANISH });
    await sofia.waitForFunction((want) => document.querySelector('#room-message').textContent === want, EN);
    // The patient already waiting hears of it with the next change to the queue.
    await ana.waitForFunction((want) => document.querySelector('#room-message').textContent === want, EN);
  });

  await step('no accessibility violations', async () => {
    assert.deepEqual(violations, []);
  });
});
