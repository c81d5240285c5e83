// The physician's own directory profile on the dashboard (issue 22, GET/PUT /api/my/profile):
// whether to be listed, name, specialties, visit types, sites, whether they take new
// patients, and which of gender, languages, sites and bio the public sees. Languages and
// gender are on the staff account (the clinic's admin sets them); here they are only
// published or not. Below the form, what the public directory shows of them
// (GET /api/directory/{id}). The markup is static in dashboard.html (#my-profile).
import { $, h } from './ui.js';
import { api } from './api.js';
import { t } from './i18n.js';

const VISIT_TYPES = ['video', 'in_person', 'phone'];
const PUBLISH = ['gender', 'languages', 'sites', 'bio'];

const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

/** One site's row: name, address, latitude, longitude, and a button to remove it. */
function siteRow(n, site = {}) {
  const id = (x) => `site-${n}-${x}`;
  const field = (x, attrs) => h('div', { class: 'field' }, h('label', { for: id(x) }, t(`profile.site_${x}`)), h('input', { id: id(x), name: x, autocomplete: 'off', ...attrs }));
  const row = h('fieldset', { class: 'site', dataset: { site: String(n) } },
    h('legend', {}, t('profile.site_n', { n: n + 1 })),
    field('name', { type: 'text', maxlength: 100, value: site.name || '' }),
    field('address', { type: 'text', maxlength: 200, value: site.address || '' }),
    h('div', { class: 'row' },
      field('lat', { type: 'number', step: 'any', min: -90, max: 90, value: site.lat ?? '' }),
      field('lon', { type: 'number', step: 'any', min: -180, max: 180, value: site.lon ?? '' })),
    h('button', { type: 'button', class: 'secondary small', onclick: () => row.remove() }, t('profile.site_remove')));
  return row;
}

function sitesOf(form) {
  const out = [];
  for (const fs of form.querySelectorAll('fieldset.site')) {
    const v = (name) => fs.querySelector(`[name=${name}]`).value.trim();
    if (![v('name'), v('address'), v('lat'), v('lon')].some(Boolean)) continue;
    out.push({ name: v('name'), address: v('address'), lat: Number(v('lat')), lon: Number(v('lon')) });
  }
  return out;
}

/** Wire #my-profile for the signed-in physician `me` ({id, name}). */
export function myProfile(me) {
  const form = $('#profile-form');
  const status = $('#profile-status');
  let sites = 0;
  let others = [];

  const fill = (p) => {
    form.elements.display_name.value = p.display_name || me.name || '';
    form.elements.specialties.value = (p.specialties || []).join(', ');
    form.elements.bio.value = p.bio || '';
    form.elements.accepting_new.checked = p.accepting_new !== false;
    form.elements.listed.checked = !!p.listed;
    for (const k of PUBLISH) form.elements[`publish_${k}`].checked = !!p.publish?.[k];
    for (const v of VISIT_TYPES) form.elements[`visit_${v}`].checked = (p.visit_types || []).includes(v);
    // Visit types this form has no box for (written by an admin) are kept as they are.
    others = (p.visit_types || []).filter((v) => !VISIT_TYPES.includes(v));
    $('#profile-sites').replaceChildren();
    sites = 0;
    for (const s of p.sites || []) $('#profile-sites').append(siteRow(sites++, s));
  };

  const preview = async () => {
    const box = $('#profile-preview');
    try {
      const l = await api('GET', `/api/directory/${encodeURIComponent(me.id)}`);
      const line = (key, value) => (value ? h('li', {}, h('strong', {}, `${t(key)}: `), value) : null);
      box.replaceChildren(h('ul', {},
        line('profile.show_name', l.display_name),
        line('profile.specialties', l.specialties?.join(', ')),
        line('profile.languages', l.languages?.join(', ')),
        line('profile.gender', l.gender),
        line('profile.sites', l.sites?.map((s) => s.name).join('; ')),
        line('profile.bio', l.bio),
        h('li', {}, l.accepting_new ? t('profile.takes_new') : t('profile.takes_no_new'))));
    } catch (e) {
      box.replaceChildren(h('p', { class: 'muted' }, e.status === 404 ? t('profile.not_listed') : e.message));
    }
  };

  const load = async () => {
    try {
      fill(await api('GET', '/api/my/profile'));
    } catch (e) {
      if (e.status !== 404) { status.className = 'notice bad'; status.textContent = e.message; }
      fill({ display_name: me.name });
    }
    preview();
  };

  $('#profile-add-site').addEventListener('click', () => {
    const row = siteRow(sites++);
    $('#profile-sites').append(row);
    row.querySelector('input').focus();
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const el = form.elements;
    // A site is found by its coordinates: one without them would be placed at 0, 0.
    const missing = [...form.querySelectorAll('fieldset.site')]
      .filter((fs) => [...fs.querySelectorAll('input')].some((i) => i.value.trim()))
      .flatMap((fs) => [...fs.querySelectorAll('[name=lat], [name=lon]')])
      .find((i) => !i.value.trim());
    if (missing) {
      status.className = 'notice bad';
      status.textContent = t('profile.site_needs_coords');
      missing.focus();
      return;
    }
    const body = {
      display_name: el.display_name.value.trim(),
      specialties: list(el.specialties.value),
      bio: el.bio.value.trim() || null,
      sites: sitesOf(form),
      visit_types: [...VISIT_TYPES.filter((v) => el[`visit_${v}`].checked), ...others],
      accepting_new: el.accepting_new.checked,
      listed: el.listed.checked,
      publish: Object.fromEntries(PUBLISH.map((k) => [k, el[`publish_${k}`].checked])),
    };
    const save = form.querySelector('button[type=submit]');
    save.disabled = true;
    status.className = 'notice';
    status.textContent = t('profile.saving');
    try {
      fill(await api('PUT', '/api/my/profile', body));
      status.className = 'notice ok';
      status.textContent = t('profile.saved');
      preview();
    } catch (e) {
      status.className = 'notice bad';
      status.textContent = e.message;
      const field = e.body?.field;
      (field === 'sites' ? badSite(form) : el[field])?.focus();
    } finally {
      save.disabled = false;
    }
  });

  load();
  return { relabel: () => { preview(); for (const fs of form.querySelectorAll('fieldset.site')) fs.replaceWith(siteRow(Number(fs.dataset.site), siteValues(fs))); } };
}

/** The first latitude or longitude out of range, else the first site's first field. */
function badSite(form) {
  return [...form.querySelectorAll('fieldset.site [name=lat], fieldset.site [name=lon]')].find((i) => !i.checkValidity())
    || form.querySelector('fieldset.site input');
}

function siteValues(fs) {
  const v = (name) => fs.querySelector(`[name=${name}]`).value;
  const num = (x) => (x === '' ? undefined : Number(x));
  return { name: v('name'), address: v('address'), lat: num(v('lat')), lon: num(v('lon')) };
}
