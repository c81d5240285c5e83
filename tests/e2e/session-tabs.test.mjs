// Issue 19: one staff session per browser, not per tab. A physician signed in on the
// dashboard opens the admin console (or a second dashboard) in a new tab: it opens without a
// sign-in form, and a change made there (which needs the CSRF token) is accepted. Signing
// out in one tab signs the others out on their next request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUpClinic, browserTest } from './support.mjs';

test('a second tab joins the staff session and can change things', { timeout: 180000 }, async (t) => {
  const { log, server, browser, step } = await browserTest(t);
  let admin; let adminCtx; let second;

  await step('the admin is signed in on one tab', async () => {
    ({ admin, adminCtx } = await setUpClinic(browser, server, log));
    await admin.goto('/admin');
    await admin.waitForSelector('#app:not([hidden])');
  });

  await step('a new tab of the same browser opens the console without asking to sign in', async () => {
    second = await adminCtx.newPage();
    await second.goto('/admin');
    await second.waitForSelector('#signin:not([hidden]), #app:not([hidden])');
    assert.equal(await second.isVisible('#signin'), false, 'the second tab asked to sign in again');
    assert.equal(await second.isVisible('#app'), true);
  });

  await step('a change made in the new tab is accepted (it carries the CSRF token)', async () => {
    await second.click('#tab-rooms');
    await second.fill('#room-name', 'Second tab room');
    await second.click('#room-save');
    await second.waitForSelector('#rooms-body >> text=Second tab room');
    const rooms = await second.evaluate(async () => (await fetch('/api/rooms')).json());
    const list = rooms.rooms || rooms;
    assert.ok(list.some((r) => r.name === 'Second tab room'), JSON.stringify(rooms));
  });

  await step('signing out in one tab ends the session for the other', async () => {
    await admin.click('#signout');
    await admin.waitForSelector('#signin:not([hidden])');
    await second.reload();
    await second.waitForSelector('#signin:not([hidden])');
  });
});
