// Each page loads in Chromium without script errors and passes axe-core, before any
// sign-in: the patient page with a link that does not exist, the staff sign-in forms,
// the set-up form, the public directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newContext, axe, shoot, widthAt320 } from './support.mjs';

test('every page loads cleanly and passes axe-core', { timeout: 120000 }, async (t) => {
  const log = [];
  const browser = await launch();
  t.after(() => browser.close());
  const ctx = await newContext(browser, 'visitor', log);
  const page = await ctx.newPage();
  const violations = [];

  // No page scrolls sideways on a 320 px phone.
  const narrow = [];
  const at320 = async (name) => { const w = await widthAt320(page); if (w.scroll > w.width) narrow.push(`${name}: ${w.scroll} px wide at ${w.width}`); };

  await page.goto('/join/no-such-link');
  await page.waitForSelector('#s-error:not([hidden])');
  assert.match(await page.textContent('#error-text'), /\S/);
  await at320('join (bad link)');
  violations.push(...await axe(page, 'join (bad link)'));
  await shoot(page, 'patient-bad-link');

  // A browser set to Spanish gets the Spanish strings.
  const esCtx = await newContext(browser, 'visitor-es', log, { locale: 'es-ES' });
  const es = await esCtx.newPage();
  await es.goto('/join/no-such-link');
  await es.waitForSelector('#s-error:not([hidden])');
  assert.equal(await es.getAttribute('html', 'lang'), 'es');
  assert.match(await es.textContent('h1:visible'), /No se puede usar/);
  violations.push(...await axe(es, 'join (bad link, Spanish)'));
  await esCtx.close();

  for (const [path, name] of [['/dashboard', 'dashboard-signin'], ['/admin', 'admin-signin']]) {
    await page.goto(path);
    await page.waitForSelector('#signin:not([hidden])');
    violations.push(...await axe(page, name));
    await shoot(page, name);
    await at320(name);
  }

  // A set-up link that does not exist says so before anyone types a password.
  await page.goto('/setup/some-token');
  await page.waitForSelector('#setup-dead:not([hidden])');
  assert.match(await page.textContent('#dead-text'), /not valid/);
  assert.equal(await page.isHidden('#setup-form'), true);
  violations.push(...await axe(page, 'setup (bad link)'));
  await shoot(page, 'setup-bad-link');
  await at320('setup');

  await page.goto('/');
  violations.push(...await axe(page, 'home'));
  await at320('home');

  // The public directory (issue 22), before any physician is listed: it says so.
  await page.goto('/directory');
  await page.waitForFunction(() => document.querySelector('#dir-count').textContent !== '');
  assert.equal(await page.textContent('#dir-count'), 'No physician matches these filters.');
  violations.push(...await axe(page, 'directory'));
  await at320('directory');

  assert.deepEqual(narrow, [], 'no sideways scrolling at 320 px');

  assert.deepEqual(log, [], 'no script errors on any page');
  assert.deepEqual(violations, []);
});
