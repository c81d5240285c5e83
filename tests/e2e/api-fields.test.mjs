// Issue 19, the client's types against the API: the pages go through a clinic's day (set-up
// links, the admin console's tabs, a room edited, a link, a visit admitted and ended, the
// survey) while web/assets/api.js reports every field they read of each answer; each read
// must be a field the OpenAPI document (GET /api/openapi.json) gives that answer. A page
// reading a renamed or never-returned field fails here, with the endpoint and field named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUpClinic, patientWaits, browserTest, watchApi } from './support.mjs';
import { checkReads, templateOf } from './api-fields.mjs';

test('every field a page reads of an API answer is in the OpenAPI document', { timeout: 240000 }, async (t) => {
  const reads = new Map();
  watchApi(reads);
  const { log, server, browser, step } = await browserTest(t);
  let admin; let doc; let patient; let visit; let openapi;

  await step('the document describes the set-up link, both ways', async () => {
    openapi = await (await fetch(`${server.url}/api/openapi.json`)).json();
    const setup = openapi.paths['/api/setup/{token}'];
    assert.ok(setup?.get && setup?.post, 'GET and POST /api/setup/{token} are documented');
    assert.ok(setup.get.responses['200'].content['application/json'].schema, 'GET answers a documented body');
    assert.ok(setup.post.responses['200'].content['application/json'].schema, 'POST answers a documented body');
  });

  await step('the checker itself catches a misspelt field and an undocumented endpoint', async () => {
    const bad = checkReads(openapi, new Map([
      ['GET /api/rooms 200', new Set(['[].name', '[].nmae'])],
      ['GET /api/setup/abc 200', new Set(['.purpose', '.revoked_at'])],
      ['GET /api/nowhere 200', new Set(['.x'])],
    ]));
    assert.deepEqual(bad.wrong, ['GET /api/rooms 200: [].nmae', 'GET /api/setup/{token} 200: .revoked_at']);
    assert.deepEqual(bad.undocumented, ['GET /api/nowhere']);
    assert.equal(templateOf(openapi, '/api/visits.csv'), '/api/visits.csv');
  });

  await step('a clinic is set up from its links and the admin goes through every tab', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    await admin.goto('/admin');
    await admin.waitForSelector('#app:not([hidden])');
    for (const tab of ['#tab-staff', '#tab-links', '#tab-visits', '#tab-experience', '#tab-rooms']) {
      await admin.click(tab);
      await admin.waitForTimeout(500);
    }
    await admin.click('#rooms-body button:has-text("Edit")');
    await admin.fill('#room-message-es', 'Espere, por favor.');
    await admin.click('#room-save');
    await admin.waitForFunction(() => document.querySelector('#room-id').value === '');
  });

  await step('a visit: link, wait, admit, end, survey', async () => {
    ({ patient, visit } = await patientWaits(browser, server, doc, log, { name: 'Lee Park' }));
    await doc.click(`#admit-${visit}`);
    await patient.waitForSelector('#s-call:not([hidden])');
    await doc.click('#end-visit');
    await doc.getByRole('dialog').getByRole('button', { name: 'End visit' }).click();
    await patient.waitForSelector('#s-survey:not([hidden])');
    await patient.click('#scale label:has-text("9")');
    await patient.click('#survey-form button[type=submit]');
    await patient.waitForSelector('#s-done:not([hidden])');
    await doc.waitForSelector('#lobby:not([hidden])');
  });

  await step('the admin reads the visit and the experience figures', async () => {
    await admin.click('#tab-visits');
    await admin.waitForSelector(`#visits-body tr[data-visit="${visit}"]`);
    await admin.click('#tab-experience');
    await admin.waitForSelector('#exp-figures .figure');
    await admin.click('#tab-links');
    await admin.waitForSelector('#links-body tr');
  });

  await step('each field read is in the answer the document describes', async () => {
    const endpoints = [...reads.keys()].sort();
    const { wrong, undocumented, checked } = checkReads(openapi, reads);
    console.log(`api-fields: ${checked} field reads checked on ${endpoints.length} endpoints:\n  ${endpoints.join('\n  ')}`);
    assert.deepEqual(wrong, [], 'pages read fields the API does not return');
    assert.deepEqual(undocumented, [], 'pages call endpoints the OpenAPI document does not describe');
    for (const e of ['GET /api/rooms 200', 'GET /api/staff 200', 'GET /api/visits 200', 'GET /api/experience 200', 'GET /api/me 200']) {
      assert.ok(endpoints.includes(e), `the journey read ${e}`);
    }
    assert.ok(endpoints.some((e) => /^GET \/api\/setup\/\S+ 200$/.test(e)), 'the journey read GET /api/setup/{token}');
    assert.ok(endpoints.some((e) => /^POST \/api\/setup\/\S+ 200$/.test(e)), 'the journey read POST /api/setup/{token}');
  });
});
