// Issue 19, what was left of the staff pages: the record panel and the API's error messages
// in Spanish; the staff table on a phone in Spanish keeps every column (rows stack); the lab
// table's date column is whole at 1024 px; and "Forgot your password?" on sign-in leads,
// through an admin's reset link, to a new password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newContext, axe, shoot, setUpClinic, patientWaits, browserTest, signInIfAsked, PHONE, TABLET, DESKTOP } from './support.mjs';

/** English the record panel would show if a string were left untranslated. */
const ENGLISH = /\b(female|male|inactive|resolved|Allergies|Problems|Medications|Vital signs|Recent labs|Immunizations|Past encounters|Refresh|Read from the record|as of|could not be loaded|High-criticality|born|years|since|Test|Result|Range)\b/;

/** Cells of `sel` (inside `wrap`) that do not fit: their right edge past the wrapper's, or the wrapper scrolls. */
const cut = (page, wrap, sel) => page.evaluate(([w, s]) => {
  const box = document.querySelector(w);
  if (!box) return ['no such element'];
  const r = box.getBoundingClientRect();
  const out = [...document.querySelectorAll(s)].filter((c) => c.getBoundingClientRect().right > r.right + 0.5).map((c) => c.textContent.trim());
  if (box.scrollWidth > box.clientWidth + 1) out.push(`scrolls: ${box.scrollWidth} > ${box.clientWidth}`);
  return out;
}, [wrap, sel]);

test('staff pages in Spanish: the record panel, API errors, the staff table on a phone; the labs at 1024; forgot password', { timeout: 300000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t, { args: ['--demo'] });
  let admin; let doc;

  await step('the physician switches the dashboard to Spanish; an API error is in Spanish too', async () => {
    ({ admin, doc } = await setUpClinic(browser, server, log));
    await doc.selectOption('#lang', 'es');
    await doc.waitForFunction(() => document.documentElement.lang === 'es');
    await doc.fill('#link-name', 'Otra Persona');
    await doc.fill('#link-ref', 'demo-patient-2');
    await doc.click('#link-form button[type=submit]');
    await doc.waitForFunction(() => /\S/.test(document.querySelector('#link-error').textContent));
    assert.equal(await doc.textContent('#link-error'), 'Solo un administrador puede poner una historia clínica en un enlace.');
    await doc.fill('#link-name', '');
    await doc.fill('#link-ref', '');
  });

  await step('the record panel in Spanish', async () => {
    const { visit } = await patientWaits(browser, server, doc, log, { name: 'Avery Testperson', ref: 'demo-patient-1', admin, born: '1968-04-17' });
    await doc.click(`#admit-${visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    await doc.waitForFunction(() => /Leído de la historia/.test(document.querySelector('#record-status')?.textContent || ''), null, { timeout: 20000 });
    const text = await doc.innerText('#record');
    assert.match(text, /Alergias/);
    assert.match(text, /Análisis recientes/);
    assert.match(text, /Alergias de criticidad alta:[^\n]*Penicillin/i);
    assert.match(text, /nacido el 1968-04-17/);
    // Coded values (sex, statuses) in the page's language, not as the record has them.
    assert.match(await doc.innerText('#record-facts'), /\bmujer\b/);
    assert.doesNotMatch(text, ENGLISH, 'English left in the Spanish record panel');
    // A lab value carries its unit once ("162 mg/dL", not "162 mg/dL mg/dL").
    assert.doesNotMatch(await doc.innerText('#record-labs'), /(\S*\/\S+) \1(?!\S)/);
    violations.push(...await axe(doc, 'record panel in Spanish'));
    await shoot(doc, 'dashboard-record-es', { tablet: true, before: (p) => p.locator('#record-labs').scrollIntoViewIfNeeded() });
  });

  await step('at 1024 px the lab table\'s date column is whole', async () => {
    for (const size of [TABLET, DESKTOP]) {
      await doc.setViewportSize(size);
      await doc.waitForTimeout(300);
      await doc.locator('#record-labs').scrollIntoViewIfNeeded();
      assert.ok(await doc.locator('#record-labs td.lab-date').count() > 0, 'the demo record has labs');
      assert.deepEqual(await cut(doc, '#record-labs .table-wrap', '#record-labs td.lab-date, #record-labs th.lab-date'), [], `at ${size.width} px`);
    }
  });

  await step('switching back to English re-labels the open panel', async () => {
    await doc.selectOption('#lang', 'en');
    await doc.waitForFunction(() => /Recent labs/.test(document.querySelector('#record').textContent));
  });

  await step('the staff table on a phone, in Spanish: every row whole, roles included', async () => {
    await admin.goto('/admin');
    await admin.selectOption('#lang', 'es');
    await admin.waitForFunction(() => document.documentElement.lang === 'es');
    await admin.click('#tab-staff');
    await admin.waitForSelector('#staff-body tr td.roles');
    await admin.setViewportSize(PHONE);
    await admin.waitForTimeout(300);
    assert.deepEqual(await cut(admin, '#panel-staff .table-wrap', '#staff-body td, #staff-body th'), []);
    const roles = admin.locator('#staff-body tr', { hasText: 'Dr Meredith Grey' }).locator('td.roles');
    assert.match(await roles.innerText(), /Médico[\s\S]*Administrador/);
    // The stacked cell names its column.
    assert.match(await roles.evaluate((td) => getComputedStyle(td, '::before').content), /Roles/);
    violations.push(...await axe(admin, 'staff table on a phone, Spanish'));
    await shoot(admin, 'admin-staff-es-stacked', { tablet: true, before: (p) => p.locator('#staff-body').scrollIntoViewIfNeeded() });
    await admin.setViewportSize(DESKTOP);
  });

  await step('"Forgot your password?" explains the admin reset, in both languages', async () => {
    const ctx = await newContext(browser, 'forgetful', log, { baseURL: server.url });
    const page = await ctx.newPage();
    await page.goto('/dashboard');
    await page.waitForSelector('#signin:not([hidden])');
    await page.getByText('Forgot your password?').click();
    await page.waitForSelector('#forgot[open]');
    assert.match(await page.innerText('#forgot'), /Ask an admin of your clinic for a password reset link/);
    assert.match(await page.innerText('#forgot'), /examroom admin create/);
    violations.push(...await axe(page, 'sign-in with forgot password open'));
    await shoot(page, 'signin-forgot', { tablet: true });
    await page.selectOption('#lang', 'es');
    await page.waitForFunction(() => /Pida a un administrador/.test(document.querySelector('#forgot').innerText));
    await ctx.close();
  });

  await step('…and the path works: the admin\'s reset link, a new password, signed in with it', async () => {
    await admin.selectOption('#lang', 'en');
    await admin.click('#tab-staff');
    await admin.getByRole('button', { name: 'Password reset link for Dr Meredith Grey' }).click();
    await admin.waitForFunction(() => /\/setup\//.test(document.querySelector('#staff-url').textContent));
    const link = new URL((await admin.textContent('#staff-url')).trim());
    const ctx = await newContext(browser, 'grey-again', log, { baseURL: server.url });
    const page = await ctx.newPage();
    await page.goto(link.pathname);
    await page.waitForSelector('#email[readonly]');
    await page.fill('#password', 'a brand new passphrase here');
    await page.fill('#password2', 'a brand new passphrase here');
    await page.click('button[type=submit]');
    await page.waitForSelector('#setup-done:not([hidden])');
    const fresh = await (await newContext(browser, 'grey-signin', log, { baseURL: server.url })).newPage();
    await fresh.goto('/dashboard');
    await signInIfAsked(fresh, 'grey@clinic.test', 'a brand new passphrase here');
    assert.equal(await fresh.isVisible('#app'), true);
    await ctx.close();
  });

  await step('no accessibility violations', async () => {
    assert.deepEqual(violations, []);
  });
});
