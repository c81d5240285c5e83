// The patient-record side panel beside the call: GET /api/visits/{visit}/record (the shape is
// in docs/records.md, "Panel JSON"). A physician acts on what it says, so it never states a
// fact the server did not verify:
// - "No known allergies recorded" / "None recorded" only for `status: "none_recorded"`;
//   a section that could not be loaded says so, with the reason, when it was tried and a
//   "Try again"; anything the panel does not understand is shown as not loaded, never as none.
// - the server's notes (resources it could not display, other patients' data it dropped,
//   truncated answers) sit under their section, prominent for allergies;
// - every section says when it was read; "Refresh" and "Try again" bypass the server's cache.

import { h } from './ui.js';
import { api } from './api.js';
import { sparkline } from './charts.js';
import { t, tn } from './i18n.js';

// Every word the panel writes comes from the staff catalogue (`rec.`); what the record
// says (names, substances, codes) is shown as the record has it.
const SECTIONS = ['allergies', 'problems', 'medications', 'vital_signs', 'labs', 'immunizations', 'encounters'];
const title = (key) => t(`rec.section.${key}`);
const noneText = (key) => (key === 'allergies' ? t('rec.none_allergies') : t('rec.none'));
/** "allergy" / "allergies" for `n` items of section `key` ("items" when not known). */
const noun = (key, n) => tn(`rec.noun.${SECTIONS.includes(key) ? key : 'item'}`, n);

// --- formatting ---------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
const isToday = (d) => d.toDateString() === new Date().toDateString();
/** "14:02" today, "2024-03-05 14:02" otherwise (24-hour, local time: unambiguous at a glance). */
export function clock(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return null;
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return isToday(d) ? hm : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}
const timeEl = (iso, text) => h('time', { datetime: iso }, text);
/** A clinical date or dateTime as its date: the panel shows days, the EHR has the rest. */
const day = (s) => (s ? String(s).slice(0, 10) : '');
const dayEl = (s) => timeEl(String(s), day(s));

const isConcept = (v) => v && typeof v === 'object' && !Array.isArray(v) && typeof v.text === 'string';
function concept(c) {
  if (!isConcept(c)) return h('span', {}, c === undefined || c === null ? t('rec.not_named_in_record') : String(c));
  const code = c.code ? `${c.system ? `${shortSystem(c.system)} ` : ''}${c.code}` : undefined;
  return h('span', { title: code }, c.text);
}
const conceptText = (c, fallback = '') => (isConcept(c) ? c.text : c ? String(c) : fallback);
function shortSystem(s) {
  if (s.includes('loinc')) return 'LOINC';
  if (s.includes('snomed')) return 'SNOMED CT';
  if (s.includes('rxnorm')) return 'RxNorm';
  if (s.includes('cvx')) return 'CVX';
  return s.replace(/^https?:\/\//, '');
}
// UCUM codes as a clinician writes them; anything else is shown as the record has it.
const UNITS = {
  'mm[Hg]': 'mmHg', Cel: '°C', '[degF]': '°F', 'kg/m2': 'kg/m²', '[lb_av]': 'lb', '[oz_av]': 'oz', '{beats}/min': '/min', '/min': '/min',
  '{breaths}/min': '/min', '[in_i]': 'in', '[ft_i]': 'ft', '[stone_av]': 'stone', 'ug/L': 'µg/L', 'ug/dL': 'µg/dL', 'umol/L': 'µmol/L', 'uL': 'µL',
  '10*3/uL': '×10³/µL', '10*6/uL': '×10⁶/µL', '10*9/L': '×10⁹/L', '10*12/L': '×10¹²/L', '[iU]/L': 'IU/L', '[IU]/L': 'IU/L', 'm[IU]/L': 'mIU/L',
  'u[IU]/mL': 'µIU/mL', 'mL/min/{1.73_m2}': 'mL/min/1.73 m²', '%{HemoglobinA1C}': '%', 'g/dL': 'g/dL', 'mg/dL': 'mg/dL', '1': '', '{ratio}': '',
};
// Anything else: the code without UCUM's annotations ("{cells}/uL" → "/µL"), micro as µ.
const unitText = (u) => (u === undefined || u === null || u === '' ? '' : Object.hasOwn(UNITS, u) ? UNITS[u]
  : String(u).replace(/\{[^}]*\}/g, '').replace(/\bu(?=(g|L|mol|mL|m|IU)\b)/g, 'µ').replace(/\[([^\]_]+)(_[a-z]+)?\]/g, '$1') || String(u));
/**
 * A lab value as the panel shows it. The server's `value` already carries its unit
 * ("162 mg/dL"): the unit is written the clinician's way, never a second time.
 */
function labValue(l) {
  if (l.value === null || l.value === undefined) return '';
  const v = String(l.value);
  const u = l.unit ? String(l.unit) : '';
  return u && v.endsWith(` ${u}`) ? `${v.slice(0, -u.length - 1)} ${unitText(u)}`.trim() : v;
}
const badge = (cls, text, title) => h('span', { class: `badge ${cls}`, title }, text);
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : v === null || v === undefined ? '?' : String(v));

/** "some details could not be read (onset, reactions)" when the server marked fields it could not read. */
function unreadable(item) {
  const f = Array.isArray(item?.unreadable_fields) ? item.unreadable_fields : [];
  if (!f.length) return null;
  return h('span', { class: 'unreadable' }, ` ${t('rec.unreadable_fields', { fields: f.map((x) => String(x).replace(/_/g, ' ')).join(', ') })}`);
}

// --- the panel ----------------------------------------------------------------------------

const current = new WeakMap(); // root -> the panel it shows now

/**
 * Load the panel for `visit` into `root` and keep it there: "Refresh" and every "Try again"
 * ask the server again with `?refresh=true`. Returns a handle whose `refresh()` does the same.
 * `patient.names`: the names this visit knows for its patient (the name they gave, the name
 * on the link); a record in another name stays closed until the physician confirms.
 * Each visit's panel opens at its top: the previous patient's scroll position would put the
 * next patient's name and allergies off-screen.
 */
export function openRecord(root, visit, { patient = {} } = {}) {
  const panel = { root, visit, rec: null, seq: 0, names: (patient.names || []).filter(Boolean), confirmedAt: null };
  current.set(root, panel);
  panel.refresh = () => load(panel, true);
  // The page's language changed: the panel again, in it (the record itself is not asked again).
  panel.relabel = () => { if (panel.rec) render(panel, panel.rec); };
  panel.confirm = () => {
    panel.confirmedAt = new Date().toISOString();
    render(panel, panel.rec);
    panel.root.querySelector('#record-h')?.focus();
  };
  root.replaceChildren(h('h2', { id: 'record-h' }, t('rec.title')), h('p', { class: 'muted', role: 'status' }, t('rec.loading')));
  root.scrollTop = 0;
  load(panel, false);
  return panel;
}

function render(panel, rec) {
  const first = !panel.rec;
  const said = panel.root.querySelector('#record-status')?.textContent || '';
  panel.rec = rec;
  renderRecord(panel.root, rec, { onRefresh: panel.refresh, identity: { names: panel.names, confirmedAt: panel.confirmedAt, onConfirm: panel.confirm } });
  panel.root.querySelector('#record-status').textContent = said;
  if (first) panel.root.scrollTop = 0;
}

// --- is this record this patient's? -------------------------------------------------------

/** Lower-case words without accents: "Ana López-García" → ["ana", "lopez", "garcia"]. */
function nameWords(name) {
  return String(name || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 1);
}

/**
 * Whether `visitName` can be the person named `recordName`: every word of the shorter name
 * is in the longer one ("Ana López" is "Ana María López García"; "Sam Exampleton" is not
 * "Robin Exampleton"). Lenient about middle names and accents, strict about given names.
 */
export function sameName(recordName, visitName) {
  const a = nameWords(recordName); const b = nameWords(visitName);
  if (!a.length || !b.length) return true; // nothing to compare
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return short.every((w) => long.includes(w));
}

/** The visit is over: forget the panel (a late answer must not bring it back). */
export function closeRecord(root) {
  current.delete(root);
  root.replaceChildren(h('h2', { id: 'record-h' }, t('rec.title')));
}

async function load(panel, refresh) {
  const seq = ++panel.seq;
  // Disabling the focused button drops focus: remember where it was, put it back after.
  const hadFocus = panel.root.contains(document.activeElement) ? document.activeElement.id : null;
  const status = panel.root.querySelector('#record-status');
  if (status) status.textContent = t('rec.refreshing');
  for (const b of panel.root.querySelectorAll('button[data-refresh]')) { b.disabled = true; b.setAttribute('aria-busy', 'true'); }
  const tried = new Date().toISOString();
  let rec = null; let error = null;
  try {
    rec = await api('GET', `/api/visits/${encodeURIComponent(panel.visit)}/record${refresh ? '?refresh=true' : ''}`);
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) throw Object.assign(new Error('the server sent something that is not a record'), { status: 200 });
  } catch (e) {
    error = e;
  }
  if (seq !== panel.seq || current.get(panel.root) !== panel) return; // a newer load, or another visit
  if (error) {
    renderFailure(panel, error, tried);
  } else {
    render(panel, rec);
    const bad = SECTIONS.filter((k) => sectionState(rec[k]) === 'unavailable').map((k) => title(k).toLowerCase());
    const when = clock(rec.fetched_at) || clock(tried);
    panel.root.querySelector('#record-status').textContent = t(refresh ? 'rec.refreshed_at' : 'rec.read_at', { time: when })
      + (rec.cached ? ` ${t('rec.saved_copy')}` : '') + '.'
      + (bad.length ? ` ${t('rec.could_not_load', { what: bad.join(', ') })}` : '');
  }
  if (hadFocus) (document.getElementById(hadFocus) || panel.root.querySelector('#record-refresh'))?.focus();
}

/** The whole panel failed. Earlier content, if any, stays below, marked with its own time. */
function renderFailure(panel, e, tried) {
  const code = e.code || '';
  if (e.status === 403 && (code === 'identity_not_confirmed' || code === 'identity_locked')) return renderIdentityGate(panel, code, tried);
  const what = t(e.status === 404 && code === 'no_record' ? 'rec.fail_no_record'
    : e.status === 404 ? 'rec.fail_no_link'
      : e.status === 403 ? 'rec.fail_forbidden'
        : e.status === 504 || code === 'records_timeout' ? 'rec.fail_timeout'
          : e.status === 0 ? 'rec.fail_offline'
            : 'rec.fail_other');
  const reason = e.message && !what.includes(e.message) ? e.message : '';
  const failure = h('div', { class: 'notice bad record-failure', id: 'record-failure' },
    h('p', {}, h('strong', {}, `${t('rec.not_loaded')} `), what),
    reason ? h('p', {}, t('rec.reason', { reason })) : null,
    h('p', {}, `${t('rec.tried_at')} `, timeEl(tried, clock(tried)), '.'),
    e.status === 403 ? null : h('button', { type: 'button', class: 'secondary small', id: 'record-retry', dataset: { refresh: '' }, onclick: panel.refresh }, t('rec.try_again')));
  if (panel.rec) {
    render(panel, panel.rec);
    panel.root.querySelector('#record-failure')?.remove(); // this failure is the newer news
    panel.root.querySelector('#record-status').after(failure);
    failure.querySelector('p').append(` ${t('rec.below_earlier', { time: clock(panel.rec.fetched_at) || t('rec.an_earlier_time') })}`);
    panel.root.querySelector('#record-status').textContent = t('rec.refresh_failed', { time: clock(tried) });
  } else {
    panel.root.replaceChildren(header(t('rec.title'), panel.refresh), status(t('rec.not_loaded_at', { time: clock(tried) })), failure);
  }
}

/**
 * The patient has not confirmed who they are: say so, offer "Check again", and the one way
 * around it — emergency access, with a reason, audited and reported to the admins.
 */
function renderIdentityGate(panel, code, tried) {
  const locked = code === 'identity_locked';
  const what = t(locked ? 'rec.gate_locked' : 'rec.gate_wait');
  const reason = h('textarea', { id: 'emergency-reason', maxlength: '500', required: true, 'aria-describedby': 'emergency-hint' });
  const error = h('p', { id: 'emergency-error', class: 'form-error', role: 'alert' });
  const form = h('form', { id: 'emergency-form', novalidate: true },
    h('label', { for: 'emergency-reason' }, t('rec.emergency_reason_label')),
    h('p', { id: 'emergency-hint', class: 'field-hint' }, t('rec.emergency_hint')),
    reason, error,
    h('button', { type: 'submit', class: 'danger small', id: 'emergency-open' }, t('rec.emergency_open')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = reason.value.trim();
    if (text.length < 10) { error.textContent = t('rec.emergency_too_short'); reason.focus(); return; }
    error.textContent = '';
    try {
      await api('POST', `/api/visits/${encodeURIComponent(panel.visit)}/record/emergency-access`, { reason: text });
    } catch (e) {
      error.textContent = e.message || t('rec.emergency_failed');
      return;
    }
    load(panel, true);
  });
  panel.root.replaceChildren(
    header(t('rec.title'), panel.refresh),
    status(t('rec.checked_at', { time: clock(tried) })),
    h('div', { class: 'notice warn', id: 'record-identity' },
      h('p', {}, h('strong', {}, t('rec.identity_not_confirmed')), ` — ${what}`),
      h('button', { type: 'button', class: 'secondary small', id: 'record-retry', dataset: { refresh: '' }, onclick: panel.refresh }, t('rec.check_again'))),
    h('details', { class: 'emergency', id: 'emergency' }, h('summary', {}, t('rec.emergency')), form));
}

function header(title, onRefresh) {
  return h('div', { class: 'record-head' },
    h('h2', { id: 'record-h', tabindex: '-1' }, title),
    onRefresh ? h('button', { type: 'button', class: 'secondary small', id: 'record-refresh', dataset: { refresh: '' }, onclick: onRefresh, 'aria-describedby': 'record-status' }, t('rec.refresh')) : null);
}
const status = (text) => h('p', { id: 'record-status', class: 'muted record-status', role: 'status', 'aria-live': 'polite' }, text);

/**
 * Render a panel object (see the contract) into `root`. `onRefresh` wires Refresh / Try again.
 * `identity`: { names, confirmedAt, onConfirm } — the visit's names for its patient; when the
 * record's name differs, only who the record is for shows until `onConfirm`.
 */
export function renderRecord(root, rec, { onRefresh, identity = {} } = {}) {
  root.replaceChildren();
  if (!rec) return;
  const d = rec.demographics || {};
  const demoOk = d.status !== 'unavailable';
  const sections = SECTIONS.map((key) => [key, key in rec ? rec[key] : rec[key === 'vital_signs' ? 'vitals' : key]]);
  // Nothing loaded at all: say it once, with one "Try again"; each section keeps its line.
  const compact = sections.every(([, sec]) => sectionState(sec) === 'unavailable');
  const opts = { onRefresh, triedAt: rec.fetched_at, compact };
  const others = demoOk && d.name ? (identity.names || []).filter((n) => !sameName(d.name, n)) : [];
  const held = others.length > 0 && !identity.confirmedAt;
  root.append(identityStrip(d, demoOk, held ? null : sections.find(([k]) => k === 'allergies')[1], onRefresh));
  root.append(status(''));
  if (others.length) root.append(mismatch(d, others, identity));
  if (held) return;
  if (compact) {
    const reasons = [...new Set([...sections.map(([, sec]) => sec), ...(demoOk ? [] : [d])].map(reasonOf).filter(Boolean))];
    const at = rec.fetched_at;
    root.append(h('div', { class: 'notice bad record-failure', id: 'record-failure' },
      h('p', {}, h('strong', {}, t('rec.nothing_loaded')), ` ${t('rec.check_ehr_all')}`),
      reasons.length ? h('p', {}, reasons.length > 2 ? t('rec.reason_more', { reason: reasons.slice(0, 2).join('; '), n: reasons.length - 2 }) : t('rec.reason', { reason: reasons.join('; ') })) : null,
      clock(at) ? h('p', {}, `${t('rec.tried_at')} `, timeEl(at, clock(at)), '.') : null,
      onRefresh ? h('button', { type: 'button', class: 'secondary small', id: 'record-retry', dataset: { refresh: '' }, onclick: onRefresh }, t('rec.try_again')) : null));
  }
  if (demoOk) {
    const lang = d.preferred_language ? conceptText(d.preferred_language) : null;
    if (lang) root.append(h('p', { class: 'muted' }, t('rec.speaks', { lang })));
    if (d.deceased) root.append(h('p', { class: 'notice bad' }, t('rec.deceased')));
  } else {
    root.append(unavailable('demographics', d, opts));
  }
  for (const [key, sec] of sections) root.append(section(key, sec, opts));
}

/**
 * What stays in view while the physician scrolls (sticky): whose record this is — name,
 * age, sex, date of birth — and the high-criticality allergies, or that the allergies could
 * not be loaded (never "none" for "not read"). `allergies` null: not shown yet.
 */
function identityStrip(d, demoOk, allergies, onRefresh) {
  const facts = demoOk
    ? [d.age !== undefined && d.age !== null ? t('rec.age', { n: d.age }) : null, coded(d.sex), d.birth_date ? [`${t('rec.born')} `, timeEl(d.birth_date, d.birth_date)] : t('rec.no_birth_date')]
      .filter(Boolean).flatMap((f, i) => (i ? [' · ', f] : [f]))
    : [t('rec.demo_not_loaded')];
  return h('div', { class: 'record-top', id: 'record-top' },
    header(demoOk && d.name ? d.name : t('rec.title'), onRefresh),
    h('p', { class: 'record-facts', id: 'record-facts' }, facts),
    allergies === null ? null : allergyLine(allergies));
}

function allergyLine(sec) {
  const state = sectionState(sec);
  const list = itemsOf(sec);
  const line = (cls, ...content) => h('p', { class: `record-top-allergies ${cls}`, id: 'record-top-allergies' }, ...content);
  if (state === 'unavailable') return line('bad', h('strong', {}, t('rec.allergies_not_loaded')), ` ${t('rec.check_the_ehr')}`);
  const high = list.filter((a) => a.criticality === 'high');
  if (high.length) return line('bad', h('strong', {}, `${t('rec.high_allergies')} `), high.map((a) => conceptText(a.substance, t('rec.not_named'))).join(', '));
  if (state === 'none_recorded' && !sec.notes?.length) return line('muted', noneText('allergies'));
  return line('muted', t('rec.no_high_allergy'));
}

/** The record is in another name than the visit's patient: say so; hold the chart until confirmed. */
function mismatch(d, others, { confirmedAt, onConfirm }) {
  const who = others.map((n) => `“${n}”`).join(` ${t('rec.and')} `);
  const record = [h('strong', {}, d.name), d.birth_date ? t('rec.born_on', { date: d.birth_date }) : ''];
  if (confirmedAt) {
    return h('div', { class: 'notice warn', id: 'record-mismatch', dataset: { confirmed: '' } },
      h('p', {}, `${t('rec.mismatch_for')} `, ...record, `${t('rec.mismatch_confirmed', { who })} `, timeEl(confirmedAt, clock(confirmedAt)), '.'));
  }
  return h('div', { class: 'notice bad record-mismatch', id: 'record-mismatch', role: 'alert' },
    h('p', {}, h('strong', {}, t('rec.mismatch_check'))),
    h('p', {}, `${t('rec.mismatch_record')} `, ...record, '.'), h('p', {}, t('rec.mismatch_patient', { who })),
    h('p', {}, t('rec.mismatch_why')),
    h('button', { type: 'button', class: 'danger small', id: 'record-confirm', onclick: onConfirm }, t('rec.mismatch_confirm')));
}

/**
 * A FHIR code from a required value set (sex, clinical or verification status, severity,
 * medication or encounter status) in the page's language; a code the catalogue does not
 * know is shown as the record has it, never dropped.
 */
function coded(code) {
  if (typeof code !== 'string' || !code) return code;
  const key = `rec.code.${code}`;
  const said = t(key);
  return said === key ? code : said;
}

/** "recorded" | "none_recorded" | "unavailable": anything else is treated as not loaded. */
function sectionState(sec) {
  if (Array.isArray(sec)) return 'recorded';
  if (!sec || typeof sec !== 'object') return 'unavailable';
  if (sec.status === 'recorded' || sec.status === 'none_recorded') return sec.status;
  return 'unavailable';
}
const itemsOf = (sec) => (Array.isArray(sec) ? sec : Array.isArray(sec?.items) ? sec.items : []);

function section(key, sec, opts) {
  const heading = title(key);
  const hid = `rec-${key}`;
  let state = sectionState(sec);
  const list = itemsOf(sec);
  // "none" with items or notes contradicts itself: show what is there, never "none".
  if (state === 'none_recorded' && (list.length || sec.notes?.length)) state = 'recorded';
  const when = sec && typeof sec === 'object' ? clock(sec.fetched_at) : null;
  const el = h('section', { 'aria-labelledby': hid, id: `record-${key}`, class: `record-section ${state}`, dataset: { status: state } },
    h('div', { class: 'section-head' },
      h('h3', { id: hid }, heading),
      when ? h('span', { class: 'asof' }, `${t('rec.as_of')} `, timeEl(sec.fetched_at, when)) : null));
  if (state === 'unavailable') {
    el.append(unavailable(key, sec, opts));
    el.append(notes(key, sec));
    return el;
  }
  el.append(notes(key, sec));
  if (state === 'none_recorded') {
    el.append(h('p', { class: 'none' }, noneText(key)));
  } else if (!list.length) {
    // "recorded" with nothing displayable: the notes say why; never read this as "none".
    if (!(sec.notes || []).length) el.append(h('p', { class: 'notice warn' }, t('rec.undisplayable', { what: heading.toLowerCase() })));
  } else {
    el.append(renderers[key](list));
  }
  return el;
}

/** Why a section could not be loaded, without the server's own "X could not be loaded:" prefix. */
function reasonOf(sec) {
  const err = sec && typeof sec === 'object' ? sec.error : null;
  const reason = typeof err?.message === 'string' ? err.message.replace(/^[^:]{0,60}could not be loaded\s*[:.—-]*\s*/i, '') : '';
  if (reason) return reason;
  if (!sec) return t('rec.no_section');
  if (typeof sec === 'object' && !['recorded', 'none_recorded', 'unavailable'].includes(sec.status)) return t('rec.unknown_status', { status: String(sec.status) });
  return '';
}

/**
 * "Allergies could not be loaded", the reason, when it was tried, and "Try again".
 * `compact`: every section failed and the panel says so once, at the top.
 */
function unavailable(key, sec, { onRefresh, triedAt, compact = false } = {}) {
  const heading = t('rec.section_not_loaded', { title: title(key) });
  const reason = reasonOf(sec);
  const at = (sec && typeof sec === 'object' && sec.fetched_at) || triedAt;
  const tried = clock(at);
  return h('div', { class: `notice ${key === 'allergies' ? 'bad' : 'warn'} unavailable`, id: `record-${key}-unavailable` },
    h('p', {}, h('strong', {}, heading), reason ? `: ${reason}` : '.'),
    compact ? null : h('p', { class: 'tried' }, tried ? [`${t('rec.tried_at')} `, timeEl(at, tried), '. '] : null, t('rec.check_ehr_section')),
    onRefresh && !compact ? h('button', { type: 'button', class: 'secondary small', id: `record-retry-${key}`, dataset: { refresh: '' }, onclick: onRefresh, 'aria-label': t('rec.try_again_for', { what: title(key).toLowerCase() }) }, t('rec.try_again')) : null);
}

/** The server's notes for a section: dropped, unreadable or truncated data. */
function notes(key, sec) {
  const list = Array.isArray(sec?.notes) ? sec.notes : [];
  const out = h('div', { class: 'notes' });
  for (const n of list) {
    const text = typeof n?.text === 'string' && n.text ? n.text : fallbackNote(key, n);
    if (n?.code === 'wrong_patient') {
      out.append(h('p', { class: 'notice warn note wrong-patient' }, h('strong', {}, `${t('rec.unreliable')} `), text));
    } else if (key === 'allergies' || n?.code === 'unreadable' || n?.code === 'too_large') {
      out.append(h('p', { class: `notice ${key === 'allergies' ? 'bad' : 'warn'} note` }, h('strong', {}, text)));
    } else {
      out.append(h('p', { class: 'note muted' }, text));
    }
  }
  return out;
}
function fallbackNote(key, n) {
  const c = typeof n?.count === 'number' ? n.count : null;
  const counted = (k) => (c === null ? t(`${k}_some`, { noun: noun(key, 2) }) : tn(k, c, { noun: noun(key, c) }));
  switch (n?.code) {
    case 'unreadable': return counted('rec.note_unreadable');
    case 'wrong_patient': return counted('rec.note_wrong_patient');
    case 'truncated': return c ? t('rec.note_truncated', { n: c }) : t('rec.note_partial');
    case 'too_large': return t('rec.note_too_large');
    default: return t('rec.note_other');
  }
}

// --- items --------------------------------------------------------------------------------

const renderers = {
  allergies(list) {
    const high = (a) => a.criticality === 'high';
    const sorted = [...list].sort((a, b) => high(b) - high(a));
    return h('ul', { class: 'items' }, sorted.map((a) => {
      const v = a.verification_status;
      const unconfirmed = v === 'unconfirmed' || v === 'presumed';
      const clinical = a.clinical_status && a.clinical_status !== 'active' ? a.clinical_status : null;
      return h('li', { class: `allergy ${high(a) ? 'high' : ''}` },
        high(a) ? h('strong', {}, `${t('rec.high_criticality')} `) : null,
        h('strong', {}, concept(a.substance)),
        unconfirmed ? [' ', badge('warn', t(v === 'presumed' ? 'rec.presumed' : 'rec.unconfirmed'), t('rec.verification_title'))] : null,
        clinical ? [' ', badge('muted', coded(clinical), t('rec.clinical_title'))] : null,
        a.reactions?.length ? ` — ${a.reactions.join(', ')}` : '',
        a.severity ? ` (${coded(a.severity)})` : '',
        a.type && a.type !== 'allergy' ? ` [${a.type}]` : '',
        a.onset ? h('span', { class: 'muted' }, ` ${t('rec.since')} `, dayEl(a.onset)) : '',
        unreadable(a));
    }));
  },
  problems(list) {
    return h('ul', { class: 'items' }, list.map((p) => h('li', {}, concept(p.condition),
      p.clinical_status && p.clinical_status !== 'active' ? [' ', badge('muted', coded(p.clinical_status))] : null,
      // provisional / differential / unconfirmed: a working diagnosis, not an established one.
      p.verification_status && p.verification_status !== 'confirmed' ? [' ', badge('warn', coded(p.verification_status), t('rec.verification_title'))] : null,
      p.onset ? h('span', { class: 'muted' }, ` ${t('rec.since')} `, dayEl(p.onset)) : '', unreadable(p))));
  },
  medications(list) {
    return h('ul', { class: 'items' }, list.map((m) => h('li', {}, concept(m.medication),
      m.dosage ? ` — ${m.dosage}` : '',
      m.status === null || m.status === undefined || m.status === ''
        ? [' ', badge('warn', t('rec.status_unknown'), t('rec.status_unknown_title'))]
        : m.status !== 'active' ? [' ', badge('muted', coded(m.status))] : null,
      m.date ? h('span', { class: 'muted' }, ' ', dayEl(m.date)) : '',
      unreadable(m))));
  },
  vital_signs(list) {
    const kinds = new Map();
    for (const v of list) kinds.set(v.kind, (kinds.get(v.kind) || 0) + 1);
    return h('ul', { class: 'vitals' }, list.map((v) => {
      const latest = v.latest || {};
      const bp = latest.diastolic !== undefined && latest.diastolic !== null;
      const unit = unitText(latest.unit || v.unit);
      const name = conceptText(v.label, String(v.kind || '').replace(/_/g, ' '));
      // Two rows of one kind (units that could not be converted) are told apart by unit.
      const label = kinds.get(v.kind) > 1 && unit ? `${name} (${unit})` : name;
      const trend = Array.isArray(v.trend) ? v.trend : [];
      const first = trend[0]?.at; const last = trend[trend.length - 1]?.at;
      const spanText = trend.length ? `, ${tn('rec.readings', trend.length)}${first ? ` ${t('rec.from_to', { from: day(first), to: day(last) })}` : ''}` : '';
      return h('li', { class: 'vital' },
        h('span', { class: 'vital-name' }, isConcept(v.label) ? h('span', { title: v.label.code ? `${shortSystem(v.label.system || '')} ${v.label.code}` : undefined }, label) : label),
        sparkline(trend.map((p) => p.value), { label: `${t('rec.trend', { label })}${spanText}`, also: bp ? trend.map((p) => p.diastolic) : null }),
        h('span', { class: 'vital-latest' },
          h('strong', {}, bp ? `${num(latest.value)}/${num(latest.diastolic)}` : num(latest.value)), unit ? ` ${unit}` : '',
          latest.at ? h('span', { class: 'muted vital-date' }, ` ${t('rec.on')} `, dayEl(latest.at)) : h('span', { class: 'muted' }, ` ${t('rec.date_not_recorded')}`),
          unreadable(v)));
    }));
  },
  labs(list) {
    // data-label: on a phone each row becomes a small block that names its cells (CSS).
    return h('div', { class: 'table-wrap' }, h('table', { class: 'labs' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('rec.lab_test')), h('th', { scope: 'col' }, t('rec.lab_result')), h('th', { scope: 'col' }, t('rec.lab_range')), h('th', { scope: 'col', class: 'lab-date' }, t('rec.lab_date')))),
      h('tbody', {}, list.map((l) => h('tr', {},
        h('td', { 'data-label': t('rec.lab_test') }, concept(l.test), unreadable(l)),
        h('td', { 'data-label': t('rec.lab_result') }, labValue(l),
          l.abnormal || (l.flag && l.flag.code && l.flag.code !== 'N') ? h('span', { class: 'flag', title: t(l.flag?.source === 'computed' ? 'rec.flag_computed' : 'rec.flag_lab') }, ` ${l.flag?.code || '!'}`) : ''),
        h('td', { 'data-label': t('rec.lab_range') }, l.reference_range || ''),
        h('td', { 'data-label': t('rec.lab_date'), class: 'lab-date' }, l.at ? dayEl(l.at) : ''))))));
  },
  immunizations(list) {
    return h('ul', { class: 'items' }, list.map((i) => h('li', {}, concept(i.vaccine),
      i.given === false ? [' ', badge('warn', t('rec.not_given'), i.status ? t('rec.status_in_record', { status: coded(i.status) }) : undefined)] : null,
      i.date ? h('span', { class: 'muted' }, ' ', dayEl(i.date)) : '', unreadable(i))));
  },
  encounters(list) {
    return h('ul', { class: 'items' }, list.map((e) => h('li', {}, e.start ? [dayEl(e.start), ' '] : '', concept(e.kind),
      e.status && e.status !== 'finished' ? [' ', badge('muted', coded(e.status))] : null,
      e.reason ? h('span', { class: 'muted' }, ' — ', concept(e.reason)) : '', unreadable(e),
      // The note examroom wrote back for a video visit (issue 22), as the record has it.
      typeof e.note === 'string' && e.note ? h('p', { class: 'visit-note-text' }, e.note) : null)));
  },
};
