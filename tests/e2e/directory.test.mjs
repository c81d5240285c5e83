// Issue 22, the public physician directory (/directory). Two physicians list themselves
// from "My directory profile": Dr Grey (family medicine, English, a site in Zaragoza, no
// online appointments) and Dra. Vega (cardiology, Spanish and English, a site in Madrid,
// appointments open). A patient, without signing in and with the keyboard alone, filters
// by language and opens Dra. Vega's booking page; distance from a point and "free within
// 24 hours" leave only her too; the page in Spanish; no accessibility violations. A site
// without coordinates, or out of range, is refused on the profile form and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axe, shoot, widthAt320, newContext, setUpClinic, addPhysician, listInDirectory, openAllDay, browserTest } from './support.mjs';

test('a patient finds a physician who speaks Spanish in the directory and opens her booking page', { timeout: 240000 }, async (t) => {
  const { log, server, browser, step, violations } = await browserTest(t);
  let page; let vegaId; let grey;

  await step('two physicians list themselves in the directory', async () => {
    let admin;
    ({ admin, doc: grey } = await setUpClinic(browser, server, log, { languages: 'en' }));
    await listInDirectory(grey, { specialties: 'Family medicine', publish: ['languages', 'sites'], sites: [{ name: 'Centro Delicias', address: 'Avenida de Madrid 1, Zaragoza', lat: 41.6488, lon: -0.8891 }] });
    const { doc: vega } = await addPhysician(browser, server, admin, log, { physician: 'Dra. Elena Vega', email: 'vega@clinic.test', room: 'Cardiología', languages: 'es, en', name: 'vega' });
    await listInDirectory(vega, { specialties: 'Cardiology', publish: ['languages', 'sites'], sites: [{ name: 'Centro Sol', address: 'Calle Mayor 1, Madrid', lat: 40.4168, lon: -3.7038 }] });
    await openAllDay(vega);
    vegaId = (await (await fetch(`${server.url}/api/directory`)).json()).find((l) => l.display_name === 'Dra. Elena Vega')?.id;
    assert.ok(vegaId, 'Dra. Vega is listed');
  });

  await step('a site without coordinates, or out of range, is refused and nothing changes', async () => {
    // Dr Grey's listing (Dra. Vega's next free slot moves with the clock).
    const greys = async () => (await (await fetch(`${server.url}/api/directory`)).json()).find((l) => l.display_name === 'Dr Meredith Grey');
    const before = await greys();
    assert.equal(before.sites.length, 1);
    await grey.click('#profile-add-site');
    await grey.fill('#site-1-name', 'Centro Norte');
    await grey.click('#profile-form button[type=submit]');
    assert.equal(await grey.textContent('#profile-status'), 'Give the latitude and longitude of each site.');
    assert.equal(await grey.evaluate(() => document.activeElement.id), 'site-1-lat');
    await grey.fill('#site-1-lat', '95');
    await grey.fill('#site-1-lon', '0');
    await grey.click('#profile-form button[type=submit]');
    await grey.waitForFunction(() => /bad/.test(document.querySelector('#profile-status').className) && /lat/.test(document.querySelector('#profile-status').textContent));
    assert.match(await grey.textContent('#profile-status'), /lat is -90\.\.90/);
    assert.equal(await grey.evaluate(() => document.activeElement.id), 'site-1-lat');
    assert.deepEqual(await greys(), before, 'his listing is as it was');
    await grey.click('[data-site="1"] button');
  });

  await step('a patient opens the directory: both physicians, what each published', async () => {
    const ctx = await newContext(browser, 'patient', log, { baseURL: server.url });
    page = await ctx.newPage();
    await page.goto('/directory');
    await page.waitForFunction(() => /found/.test(document.querySelector('#dir-count').textContent));
    assert.equal(await page.textContent('#dir-count'), '2 physicians found.');
    const grey = page.locator('.dir-result', { hasText: 'Dr Meredith Grey' });
    assert.match(await grey.textContent(), /Family medicine/);
    assert.match(await grey.textContent(), /Speaks English/);
    assert.match(await grey.textContent(), /Does not take appointments online/);
    const vega = page.locator('.dir-result', { hasText: 'Dra. Elena Vega' });
    assert.match(await vega.textContent(), /Next free appointment: /);
    assert.match(await vega.textContent(), /Centro Sol — Calle Mayor 1, Madrid/);
    violations.push(...await axe(page, 'directory'));
    const w = await widthAt320(page);
    assert.ok(w.scroll <= w.width, `no sideways scrolling at 320 px (${w.scroll} px wide)`);
    await shoot(page, 'directory');
  });

  await step('with the keyboard alone she picks "speaks Spanish", searches and opens the booking link', async () => {
    await page.focus('#dir-language');
    await page.keyboard.type('Esp');
    assert.equal(await page.inputValue('#dir-language'), 'es');
    // Tab on to the Search button, through the controls in between, each with its label.
    for (let i = 0; i < 12 && (await page.evaluate(() => document.activeElement.id)) !== 'dir-search'; i++) {
      await page.keyboard.press('Tab');
      const label = await page.evaluate(() => { const el = document.activeElement; return el.labels?.[0]?.textContent || el.textContent || ''; });
      assert.ok(label.trim(), `the control ${await page.evaluate(() => document.activeElement.id)} has a label`);
    }
    assert.equal(await page.evaluate(() => document.activeElement.id), 'dir-search');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#dir-count').textContent === '1 physician found.');
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dra. Elena Vega']);
    // The search is in the address: reloading or sharing it gives the same list.
    assert.equal(new URL(page.url()).searchParams.get('language'), 'es');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Book an appointment with Dra. Elena Vega');
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.pathname === '/book' && u.searchParams.get('physician') === vegaId);
  });

  await step('near a point, within 100 km, or free within 24 hours: only Dra. Vega, nearest first', async () => {
    await page.goto('/directory?near=40.45,-3.69');
    await page.waitForFunction(() => /found/.test(document.querySelector('#dir-count').textContent));
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dra. Elena Vega', 'Dr Meredith Grey']);
    assert.match(await page.locator('.dir-result').first().textContent(), /\d(\.\d)? km away/);
    await page.fill('#dir-within', '100');
    await page.click('#dir-search');
    await page.waitForFunction(() => document.querySelector('#dir-count').textContent === '1 physician found.');
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dra. Elena Vega']);
    await page.click('#dir-clear');
    await page.waitForFunction(() => document.querySelector('#dir-count').textContent === '2 physicians found.');
    await page.selectOption('#dir-free', '1');
    await page.click('#dir-search');
    await page.waitForFunction(() => document.querySelector('#dir-count').textContent === '1 physician found.');
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dra. Elena Vega']);
    // A distance with nowhere to measure from is caught before asking.
    await page.selectOption('#dir-free', '');
    await page.fill('#dir-within', '50');
    await page.click('#dir-search');
    assert.equal(await page.textContent('#dir-error'), 'Give a town or postcode to measure the distance from.');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'dir-near');
  });

  await step('from a town typed in "near": the box offers it, the page says where distances are from', async () => {
    await page.goto('/directory');
    await page.waitForFunction(() => /found/.test(document.querySelector('#dir-count').textContent));
    await page.fill('#dir-near', 'zarag');
    // Offered as the patient types: the Spanish Zaragoza first (the clinic's sites are in Spain).
    await page.waitForFunction(() => document.querySelectorAll('#dir-near-list option').length > 0);
    assert.equal(await page.getAttribute('#dir-near-list option >> nth=0', 'value'), 'Zaragoza, Spain');
    await page.fill('#dir-near', 'Zaragoza, Spain');
    await page.fill('#dir-within', '100');
    await page.click('#dir-search');
    await page.waitForFunction(() => document.querySelector('#dir-count').textContent === '1 physician found.');
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dr Meredith Grey']);
    assert.equal(await page.textContent('#dir-origin'), 'Distances from Zaragoza, Spain.');
    // A place nobody knows is said so, and the cursor goes back to it.
    await page.fill('#dir-near', 'Nowhere-on-Sea');
    await page.click('#dir-search');
    await page.waitForFunction(() => /do not know/.test(document.querySelector('#dir-error').textContent));
    assert.equal(await page.evaluate(() => document.activeElement.id), 'dir-near');
    await page.click('#dir-clear');
  });

  await step('in Spanish', async () => {
    await page.goto('/directory?lang=es&sort=earliest');
    await page.waitForFunction(() => /encontrado/.test(document.querySelector('#dir-count').textContent));
    assert.equal(await page.getAttribute('html', 'lang'), 'es');
    assert.equal(await page.textContent('h1'), 'Buscar un médico');
    assert.equal(await page.textContent('#dir-count'), '2 médicos encontrados.');
    // Earliest free appointment first: the physician without online appointments last.
    assert.deepEqual(await page.locator('.dir-result h3').allTextContents(), ['Dra. Elena Vega', 'Dr Meredith Grey']);
    assert.equal(new URL(await page.getAttribute('.dir-book', 'href'), server.url).searchParams.get('lang'), 'es');
    violations.push(...await axe(page, 'directory (Spanish)'));
  });

  await step('no accessibility violations and no script errors', () => {
    assert.deepEqual(violations, []);
    assert.deepEqual(log.filter((l) => /page error/.test(l)), []);
  });
});
