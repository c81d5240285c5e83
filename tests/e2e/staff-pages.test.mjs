// Issue 19, the staff half: the admin console, the dashboard and the set-up page in English
// and Spanish (the browser's language, a switcher in the top bar that is remembered),
// in-page dialogs instead of confirm()/prompt() that work with the keyboard alone, the
// invitation that knows whom it is for, the staff table's status, roles and deactivation,
// and a favicon on every page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { newContext, axe, shoot, setUpClinic, patientWaits, browserFor, signInIfAsked, PASSWORD, PHONE, DESKTOP, browserTest } from './support.mjs';

const file = (name) => JSON.parse(readFileSync(new URL(`../../web/assets/i18n/${name}.json`, import.meta.url), 'utf8'));
// What a staff page loads: the patient page's catalogue and the staff pages' own.
const EN = { ...file('en'), ...file('en.staff') };
const ES = { ...file('es'), ...file('es.staff') };
// The staff pages' keys; the patient page's are checked by its own tests.
const STAFF = /^(staff|dash|admin|setup|dialog|link|fig|outcome|devices)\./;

/**
 * English left on a page that should be Spanish: any staff string of the English
 * catalogue that differs in Spanish, and common English words, in the visible text of
 * `selectors`. The clinic's own data (names, rooms, e-mails) is English in this test and
 * is taken out first.
 */
async function englishLeft(page, selectors, data) {
  let text = '';
  for (const sel of selectors) {
    for (const el of await page.locator(sel).all()) if (await el.isVisible()) text += `\n${await el.innerText()}`;
  }
  for (const d of data) text = text.split(d).join(' ');
  const found = [];
  for (const [k, en] of Object.entries(EN)) {
    if (!STAFF.test(k) || en === ES[k] || en.length < 4 || /\{/.test(en)) continue;
    // Whole words only: "Admin" is not English inside "Administrador".
    const escaped = en.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    if (new RegExp(`(?<!\\p{L})${escaped}(?!\\p{L})`, 'u').test(text)) found.push(`"${en}" (${k})`);
  }
  const words = text.match(/\b(the|and|your|with|Sign|Rooms|Staff|Links|Visits|Create|Save|Show|Invite|Name|Waiting|Patient|Email|Password|Status|Actions|Kind|Active|Deactivate|Reset|Room|Yes|Loading|Nobody|Figures)\b/g) || [];
  return [...found, ...new Set(words)];
}

const DATA = ['Ada Admin', 'Dr Meredith Grey', 'Dr Gregory House', 'Family medicine', 'admin@clinic.test', 'grey@clinic.test', 'house@clinic.test', 'Lee Park', 'Rash', 'examroom'];

test('staff pages in two languages, with dialogs, invitations and a staff table an admin can run', { timeout: 300000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t);
  const failed = [];
  let admin; let adminCtx; let doc; let invitation;

  await step('the English and Spanish catalogues have the same keys, none empty', () => {
    const missing = (a, b) => Object.keys(a).filter((k) => !(k in b));
    for (const part of ['', '.staff']) {
      const en = file(`en${part}`); const es = file(`es${part}`);
      assert.deepEqual(missing(en, es), [], `in en${part}.json, not in es${part}.json`);
      assert.deepEqual(missing(es, en), [], `in es${part}.json, not in en${part}.json`);
    }
    // No key in both files: one would silently hide the other.
    assert.deepEqual(Object.keys(file('en')).filter((k) => k in file('en.staff')), []);
    const empty = Object.entries({ ...EN, ...ES }).filter(([, v]) => typeof v !== 'string');
    assert.deepEqual(empty, []);
    const staffKeys = Object.keys(EN).filter((k) => STAFF.test(k));
    assert.ok(staffKeys.length > 200, `${staffKeys.length} staff strings`);
    // The same placeholders on both sides: a translation cannot drop a name or a number.
    const vars = (s) => (s.match(/\{\w+\}/g) || []).sort().join();
    assert.deepEqual(Object.keys(EN).filter((k) => vars(EN[k]) !== vars(ES[k])), []);
  });

  await step('a clinic: first admin, a physician invited with an e-mail they cannot change', async () => {
    ({ admin, adminCtx, doc } = await setUpClinic(browser, server, log));
    for (const ctx of [adminCtx]) ctx.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/api/')) failed.push(`${r.status()} ${r.url()}`); });
  });

  await step('an invitation shows its link with a copy button and when it expires; the table says "pending"', async () => {
    await adminCtx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await admin.click('#tab-staff');
    await admin.fill('#staff-email', 'house@clinic.test');
    await admin.fill('#staff-name', 'Dr Gregory House');
    await admin.click('#staff-form button[type=submit]');
    await admin.waitForFunction(() => /House/.test(document.querySelector('#staff-out-for').textContent));
    invitation = (await admin.textContent('#staff-url')).trim();
    assert.match(await admin.textContent('#staff-out-for'), /Invitation for Dr Gregory House <house@clinic.test>/);
    assert.match(await admin.textContent('#staff-expiry'), /^Works until .+ \(7 days from now\)\. It works once\.$/);
    await admin.click('#staff-copy');
    assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), invitation);
    const row = admin.locator('#staff-body tr', { hasText: 'Dr Gregory House' });
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'pending');
    assert.match(await row.innerText(), /Invited, not yet accepted/);
    assert.match(await admin.locator('#staff-body tr', { hasText: 'Dr Meredith Grey' }).innerText(), /Active/);
    violations.push(...await axe(admin, 'admin staff table'));
    await shoot(admin, 'admin-staff', { before: (p) => p.locator('#staff-out').scrollIntoViewIfNeeded() });
  });

  await step('the invitee sees their e-mail read-only and their name; the server refuses another e-mail', async () => {
    const ctx = await newContext(browser, 'house', log, { baseURL: server.url });
    const house = await ctx.newPage();
    await house.goto(new URL(new URL(invitation).pathname, server.url).href);
    await house.waitForSelector('#email[readonly]');
    assert.equal(await house.inputValue('#email'), 'house@clinic.test');
    assert.equal(await house.inputValue('#name'), 'Dr Gregory House');
    assert.equal((await house.textContent('#setup-h')).trim(), 'Accept your invitation');
    assert.match(await house.textContent('#setup-expiry'), /Works until .+ It works once\./);
    // What a page that let the field be edited would send: a clear error, the link kept.
    const other = await house.evaluate(async (path) => {
      const r = await fetch(`/api/setup/${path.split('/').pop()}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'someone@else.test', name: 'X', password: 'a long enough password' }) });
      return { status: r.status, body: await r.json() };
    }, new URL(invitation).pathname);
    assert.deepEqual([other.status, other.body.field], [422, 'email'], JSON.stringify(other.body));
    violations.push(...await axe(house, 'invitation'));
    await shoot(house, 'setup-invitation');
    await house.fill('#password', PASSWORD);
    await house.fill('#password2', PASSWORD);
    await house.click('#setup-form button[type=submit]');
    await house.waitForSelector('#setup-done:not([hidden])');
    // The link worked once; opened again it says so, and what to do.
    await house.goto(new URL(new URL(invitation).pathname, server.url).href);
    await house.waitForSelector('#setup-dead:not([hidden])');
    assert.match(await house.textContent('#dead-text'), /used already.*ask an admin/);
    await ctx.close();
    await admin.click('#tab-rooms');
    await admin.click('#tab-staff');
    await admin.locator('#staff-body tr[data-status=active]', { hasText: 'Dr Gregory House' }).waitFor();
  });

  await step('deactivating asks in the page: keyboard only — Escape cancels, Tab stays inside, Enter confirms', async () => {
    const button = admin.getByRole('button', { name: 'Deactivate Dr Gregory House' });
    await button.focus();
    await admin.keyboard.press('Enter');
    const dialog = admin.getByRole('dialog', { name: 'Deactivate Dr Gregory House?' });
    await dialog.waitFor();
    const focused = () => admin.evaluate(() => ({ inDialog: !!document.activeElement.closest('dialog[open]'), text: document.activeElement.textContent.trim() }));
    assert.deepEqual(await focused(), { inDialog: true, text: 'Cancel' }, 'a destructive dialog starts on Cancel');
    for (let i = 0; i < 5; i += 1) {
      await admin.keyboard.press('Tab');
      assert.equal((await focused()).inDialog, true, `focus left the dialog after ${i + 1} Tab`);
    }
    await admin.keyboard.press('Shift+Tab');
    assert.equal((await focused()).inDialog, true, 'Shift+Tab too');
    violations.push(...await axe(admin, 'deactivate dialog'));
    await shoot(admin, 'dialog-deactivate');
    await admin.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await admin.evaluate(() => document.activeElement.textContent.trim()), 'Deactivate Dr Gregory House', 'focus back where it was');
    assert.equal(await admin.locator('#staff-body tr', { hasText: 'Dr Gregory House' }).getAttribute('data-status'), 'active', 'Escape changed nothing');

    await admin.keyboard.press('Enter');
    await dialog.waitFor();
    await admin.keyboard.press('Tab');
    assert.equal((await focused()).text, 'Deactivate');
    await admin.keyboard.press('Enter');
    await admin.locator('#staff-body tr[data-status=deactivated]', { hasText: 'Dr Gregory House' }).waitFor();
    assert.match(await admin.locator('#staff-body tr', { hasText: 'Dr Gregory House' }).innerText(), /Deactivated/);
    assert.equal(await admin.evaluate(() => document.querySelectorAll('dialog').length), 0, 'no dialog left behind');
  });

  await step('roles are edited in the table; a deactivated account can be reactivated', async () => {
    await admin.getByRole('button', { name: 'Reactivate Dr Gregory House' }).click();
    const row = admin.locator('#staff-body tr[data-status=active]', { hasText: 'Dr Gregory House' });
    await row.waitFor();
    await row.locator('input[data-role=admin]').focus();
    await admin.keyboard.press('Space');
    await admin.waitForFunction(() => document.querySelector('#toast')?.textContent.includes('Roles of Dr Gregory House saved'));
    const roles = await admin.evaluate(async () => (await (await fetch('/api/staff')).json()).find((s) => s.name === 'Dr Gregory House').roles);
    assert.deepEqual(roles.sort(), ['admin', 'physician']);
    // The admin cannot take their own admin role away or deactivate themselves: not offered.
    const me = admin.locator('#staff-body tr', { hasText: 'Ada Admin' });
    assert.equal(await me.locator('input[data-role=admin]').isDisabled(), true);
    assert.equal(await me.locator('input[data-role=admin]').isChecked(), true);
    assert.equal(await me.getByRole('button', { name: /Deactivate/ }).count(), 0);
    // Were a page to send it anyway, the server refuses it, naming why.
    const refused = await admin.evaluate(async () => {
      const staff = await (await fetch('/api/staff')).json();
      const ada = staff.find((x) => x.name === 'Ada Admin');
      const csrf = JSON.parse(sessionStorage.getItem('examroom.staff')).csrf_token;
      const r = await fetch(`/api/staff/${ada.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ roles: ['physician'] }) });
      return [r.status, (await r.json()).message];
    });
    assert.equal(refused[0], 422);
    assert.match(refused[1], /own admin role/);
  });

  await step('revoking a join link asks in the page first', async () => {
    await admin.click('#tab-links');
    await admin.waitForSelector('#links-room option', { state: 'attached' });
    await admin.fill('#link-name', 'Lee Park');
    await admin.click('#link-form button[type=submit]');
    await admin.waitForSelector('#link-out:not([hidden])');
    assert.match(await admin.textContent('#link-expiry'), /^Works until /);
    const row = admin.locator('#links-body tr', { hasText: 'Lee Park' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    const dialog = admin.getByRole('dialog', { name: 'Revoke the link for Lee Park?' });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await row.getAttribute('data-status'), 'open');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await admin.locator('#links-body tr[data-status=revoked]', { hasText: 'Lee Park' }).waitFor();
  });

  await step('a Spanish browser gets the admin console in Spanish, every tab', async () => {
    const ctx = await newContext(browser, 'admin-es', log, { baseURL: server.url, locale: 'es-ES' });
    ctx.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/api/')) failed.push(`${r.status()} ${r.url()}`); });
    const es = await ctx.newPage();
    await es.goto('/admin');
    await es.waitForSelector('#signin:not([hidden])');
    assert.equal(await es.getAttribute('html', 'lang'), 'es');
    assert.equal((await es.textContent('#signin-h')).trim(), 'Iniciar sesión');
    assert.deepEqual(await englishLeft(es, ['header', '#signin'], DATA), []);
    await signInIfAsked(es, 'admin@clinic.test');
    const left = [];
    for (const [tab, ready] of [['#tab-rooms', '#rooms-body tr'], ['#tab-staff', '#staff-body tr'], ['#tab-links', '#links-body tr'], ['#tab-visits', '#visits-body tr'], ['#tab-experience', '#exp-figures .figure']]) {
      await es.click(tab);
      await es.waitForSelector(ready);
      left.push(...(await englishLeft(es, ['header', '#app'], DATA)).map((w) => `${tab}: ${w}`));
    }
    assert.deepEqual(left, [], 'English left on the Spanish admin console');
    await es.click('#tab-staff');
    await es.waitForSelector('#staff-body tr');
    violations.push(...await axe(es, 'admin staff (Spanish)'));
    await shoot(es, 'admin-staff-es');

    // A Spanish dialog, too.
    await es.getByRole('button', { name: 'Desactivar a Dr Gregory House' }).click();
    await es.getByRole('dialog', { name: '¿Desactivar a Dr Gregory House?' }).waitFor();
    assert.deepEqual(await englishLeft(es, ['dialog'], DATA), []);
    await es.keyboard.press('Escape');

    // The switcher: English now, remembered on reload and on the other staff pages.
    await es.selectOption('#lang', 'en');
    await es.waitForFunction(() => document.documentElement.lang === 'en' && document.querySelector('#tab-staff').textContent === 'Staff');
    await es.waitForSelector('#staff-body >> text=Password reset link for Dr Meredith Grey');
    await es.reload();
    await es.waitForSelector('#app:not([hidden])');
    assert.equal(await es.getAttribute('html', 'lang'), 'en');
    assert.equal(await es.inputValue('#lang'), 'en');
    await es.selectOption('#lang', 'es');
    await es.waitForFunction(() => document.querySelector('#tab-rooms').textContent === 'Salas');
    await ctx.close();
  });

  await step('the dashboard in Spanish: lobby, queue, turning a patient away in a dialog, the call controls', async () => {
    const ctx = await newContext(browser, 'physician-es', log, { baseURL: server.url, locale: 'es-MX' });
    ctx.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/api/')) failed.push(`${r.status()} ${r.url()}`); });
    const es = await ctx.newPage();
    await es.goto('/dashboard');
    await signInIfAsked(es, 'grey@clinic.test');
    await es.waitForSelector('#rooms >> text=No hay nadie esperando.');
    await es.waitForSelector('#my-figures .figure');
    assert.deepEqual(await englishLeft(es, ['header', '#lobby'], DATA), []);
    assert.equal(await es.title(), 'Panel · examroom');
    const lee = await patientWaits(browser, server, es, log, { name: 'Lee Park', reason: 'Rash' });
    await es.waitForFunction(() => document.title === '(1) Panel · examroom');
    assert.match(await es.locator(`.queue li[data-visit="${lee.visit}"] .wait`).textContent(), /^Esperando \d+:\d\d$/);
    assert.deepEqual(await englishLeft(es, ['header', '#lobby'], DATA), []);
    violations.push(...await axe(es, 'dashboard queue (Spanish)'));
    await shoot(es, 'dashboard-es', { tablet: true });

    // Deny: a dialog with the reason field, in Spanish, keyboard only; Enter in the field confirms.
    await es.locator(`#deny-${lee.visit}`).focus();
    await es.keyboard.press('Enter');
    const dialog = es.getByRole('dialog', { name: '¿Rechazar a Lee Park?' });
    await dialog.waitFor();
    assert.equal(await es.evaluate(() => document.activeElement.id.endsWith('-input')), true, 'the reason field has focus');
    assert.deepEqual(await englishLeft(es, ['dialog'], DATA), []);
    await shoot(es, 'dialog-deny-es');
    await es.keyboard.type('Por favor, pida cita presencial');
    await es.keyboard.press('Enter');
    await lee.patient.waitForSelector('text=Por favor, pida cita presencial');
    await es.waitForFunction(() => document.title === 'Panel · examroom');
    await ctx.close();
  });

  await step('the end-visit dialog replaces confirm(): Escape keeps the call, the button ends it', async () => {
    // The Spanish dashboard took over Dr Grey's connection (the newest wins): back to this one.
    await doc.reload();
    await doc.waitForSelector('#app:not([hidden])');
    const kim = await patientWaits(browser, server, doc, log, { name: 'Kim Nakamura' });
    await doc.click(`#admit-${kim.visit}`);
    await doc.waitForSelector('#visit:not([hidden])');
    let native = 0;
    doc.on('dialog', () => { native += 1; });
    await doc.click('#end-visit');
    const dialog = doc.getByRole('dialog', { name: 'End this visit for everyone?' });
    await dialog.waitFor();
    await doc.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await doc.isVisible('#visit'), true, 'still in the call');
    await doc.click('#end-visit');
    await dialog.getByRole('button', { name: 'End visit' }).click();
    await doc.waitForSelector('#lobby:not([hidden])');
    await kim.patient.waitForSelector('#s-survey:not([hidden]), #s-done:not([hidden])');
    assert.equal(native, 0, 'no browser confirm() or prompt()');
  });

  await step('a favicon on every page; no page or asset request fails', async () => {
    for (const path of ['/', '/dashboard', '/admin', '/setup/nothing', '/join/nothing', '/directory']) {
      await admin.goto(path);
      const icon = await admin.evaluate(async () => {
        const href = document.querySelector('link[rel=icon]')?.href;
        const r = href ? await fetch(href) : null;
        return { href, status: r?.status, type: r?.headers.get('content-type') };
      });
      assert.deepEqual([icon.status, icon.type], [200, 'image/svg+xml'], `${path}: ${JSON.stringify(icon)}`);
    }
    const ico = await admin.evaluate(async () => { const r = await fetch('/favicon.ico'); return [r.status, r.headers.get('content-type')]; });
    assert.deepEqual(ico, [200, 'image/svg+xml']);
    assert.deepEqual(failed, []);
  });

  await step('no serious or critical accessibility violations', () => {
    assert.deepEqual(violations, []);
  });
});

test('the set-up page in Spanish, and its phone layout', { timeout: 60000 }, async (t) => {
  const log = [];
  const browser = await browserFor(t, log);
  const ctx = await newContext(browser, 'visitor-es', log, { locale: 'es-ES', viewport: PHONE });
  const page = await ctx.newPage();
  await page.goto('/setup/no-such-token');
  await page.waitForSelector('#setup-dead:not([hidden])');
  assert.equal((await page.textContent('#dead-h')).trim(), 'Este enlace de configuración no se puede usar');
  assert.match(await page.textContent('#dead-text'), /no es válido/);
  assert.deepEqual(await englishLeft(page, ['header', 'main'], DATA), []);
  await page.setViewportSize(DESKTOP);
  assert.deepEqual(log, []);
});
