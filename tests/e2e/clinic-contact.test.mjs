// Issue 19, error pages name the clinic: a patient whose join link does not exist or was
// revoked, and someone whose set-up link cannot be used, read whom to ask — the clinic's
// name and contact from the server's `[clinic]` settings — in their page's language. A
// server without them says to ask the clinic, or whoever sent the link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newContext, axe, shoot, startServer, setUpClinic, browserTest, widthAt320 } from './support.mjs';

const NAME = 'Riverside Family Practice';
const CONTACT = '+1 555 0100, Mon–Fri 8:00–17:00';

test('pages that cannot go on name the clinic and how to reach it', { timeout: 180000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t, { env: { EXAMROOM__CLINIC__NAME: NAME, EXAMROOM__CLINIC__CONTACT: CONTACT } });
  const bare = await startServer();
  t.after(() => bare.stop());
  let page;

  await step('a link that does not exist: the clinic and its contact', async () => {
    const ctx = await newContext(browser, 'visitor', log, { baseURL: server.url });
    page = await ctx.newPage();
    await page.goto('/join/no-such-link');
    await page.waitForSelector('#error-clinic:not([hidden])');
    assert.equal(await page.textContent('#error-clinic'), `Questions? Contact ${NAME}: ${CONTACT}`);
    violations.push(...await axe(page, 'bad link with clinic contact'));
    const w = await widthAt320(page);
    assert.ok(w.scroll <= w.width, `${w.scroll} px wide at 320`);
    await shoot(page, 'patient-bad-link-clinic', { tablet: true });
  });

  await step('in Spanish too', async () => {
    const ctx = await newContext(browser, 'visitor-es', log, { baseURL: server.url, locale: 'es-ES' });
    const es = await ctx.newPage();
    await es.goto('/join/no-such-link');
    await es.waitForSelector('#error-clinic:not([hidden])');
    assert.equal(await es.textContent('#error-clinic'), `¿Preguntas? Contacte con ${NAME}: ${CONTACT}`);
    await ctx.close();
  });

  await step('a revoked link: the same', async () => {
    const { admin } = await setUpClinic(browser, server, log);
    await admin.click('#tab-links');
    await admin.waitForSelector('#links-room option', { state: 'attached' });
    await admin.fill('#link-name', 'Lee Park');
    await admin.click('#link-form button[type=submit]');
    await admin.waitForSelector('#link-out:not([hidden])');
    const url = new URL((await admin.textContent('#link-url')).trim());
    await admin.evaluate(async () => {
      const { api } = await import('/assets/api.js');
      const res = await api('GET', '/api/links');
      const links = Array.isArray(res) ? res : res.links || res.items;
      await api('DELETE', `/api/links/${encodeURIComponent(links[0].id)}`);
    });
    const ctx = await newContext(browser, 'patient', log, { baseURL: server.url });
    const patient = await ctx.newPage();
    await patient.goto(url.pathname);
    await patient.waitForSelector('#error-clinic:not([hidden])');
    assert.match(await patient.textContent('#error-text'), /cancelled/);
    assert.equal(await patient.textContent('#error-clinic'), `Questions? Contact ${NAME}: ${CONTACT}`);
    await ctx.close();
  });

  await step('a set-up link that cannot be used: the same', async () => {
    await page.goto('/setup/some-token');
    await page.waitForSelector('#dead-clinic:not([hidden])');
    assert.equal(await page.textContent('#dead-clinic'), `Questions? Contact ${NAME}: ${CONTACT}`);
    violations.push(...await axe(page, 'dead set-up link with clinic contact'));
    await shoot(page, 'setup-bad-link-clinic', { tablet: true });
  });

  await step('a server without [clinic]: ask the clinic or whoever sent the link', async () => {
    const ctx = await newContext(browser, 'visitor-bare', log, { baseURL: bare.url });
    const p = await ctx.newPage();
    await p.goto('/join/no-such-link');
    await p.waitForSelector('#error-clinic:not([hidden])');
    assert.equal(await p.textContent('#error-clinic'), 'Questions? Contact the clinic, or whoever sent you this link.');
    await ctx.close();
  });

  await step('no accessibility violations, no script errors', async () => {
    assert.deepEqual(violations, []);
    assert.deepEqual(log, []);
  });
});
