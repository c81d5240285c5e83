// The patient-record side panel: renders the summary from GET /api/visits/{visit}/record
// generically. Every section is either {status:"recorded", items:[…]} or
// {status:"none_recorded"}; coded things are {text, code, system}: text shown, code on hover.

import { h } from './ui.js';
import { sparkline } from './charts.js';

const ORDER = ['allergies', 'problems', 'medications', 'vital_signs', 'vitals', 'labs', 'immunizations', 'encounters'];
const TITLES = {
  allergies: 'Allergies', problems: 'Problems', medications: 'Medications', vital_signs: 'Vital signs', vitals: 'Vital signs',
  labs: 'Recent labs', immunizations: 'Immunizations', encounters: 'Past encounters',
};

const isConcept = (v) => v && typeof v === 'object' && typeof v.text === 'string' && !Array.isArray(v);
function concept(c) {
  if (!isConcept(c)) return h('span', {}, c === undefined || c === null ? '' : String(c));
  const code = c.code ? `${c.system ? `${shortSystem(c.system)} ` : ''}${c.code}` : undefined;
  return h('span', { title: code }, c.text);
}
function shortSystem(s) {
  if (s.includes('loinc')) return 'LOINC';
  if (s.includes('snomed')) return 'SNOMED CT';
  if (s.includes('rxnorm')) return 'RxNorm';
  if (s.includes('cvx')) return 'CVX';
  return s.replace(/^https?:\/\//, '');
}
const date = (s) => (s ? String(s).slice(0, 10) : '');
const items = (sec) => (Array.isArray(sec) ? sec : sec?.items || []);
const none = (sec) => !sec || sec.status === 'none_recorded' || items(sec).length === 0;

export function renderRecord(root, rec) {
  root.replaceChildren();
  if (!rec) return;
  const d = rec.demographics || {};
  root.append(h('h2', { id: 'record-h' }, d.name || 'Patient record'));
  const facts = [d.age !== undefined && d.age !== null ? `${d.age} years` : null, d.sex, d.birth_date ? `born ${d.birth_date}` : null,
    d.preferred_language ? (isConcept(d.preferred_language) ? d.preferred_language.text : d.preferred_language) : null].filter(Boolean);
  if (facts.length) root.append(h('p', { class: 'muted' }, facts.join(' · ')));
  if (d.deceased) root.append(h('p', { class: 'notice bad' }, 'Recorded as deceased.'));
  const keys = [...ORDER.filter((k) => k in rec), ...Object.keys(rec).filter((k) => !ORDER.includes(k) && rec[k] && typeof rec[k] === 'object' && 'status' in rec[k])];
  for (const key of keys) {
    const sec = rec[key];
    const sid = `rec-${key}`;
    const section = h('section', { 'aria-labelledby': sid, id: `record-${key}` }, h('h3', { id: sid }, TITLES[key] || key.replace(/_/g, ' ')));
    if (none(sec)) section.append(h('p', { class: 'none' }, key === 'allergies' ? 'No known allergies recorded' : 'None recorded'));
    else section.append(renderers[key]?.(items(sec)) || generic(items(sec)));
    root.append(section);
  }
}

const renderers = {
  allergies(list) {
    const sorted = [...list].sort((a, b) => (b.criticality === 'high') - (a.criticality === 'high'));
    return h('ul', {}, sorted.map((a) => h('li', { class: `allergy ${a.criticality === 'high' ? 'high' : ''}` },
      a.criticality === 'high' ? h('strong', {}, '⚠ High criticality: ') : null,
      h('strong', {}, concept(a.substance)),
      a.reactions?.length ? ` — ${a.reactions.join(', ')}` : '',
      a.severity ? ` (${a.severity})` : '',
      a.type && a.type !== 'allergy' ? ` [${a.type}]` : '')));
  },
  problems(list) {
    return h('ul', {}, list.map((p) => h('li', {}, concept(p.condition), p.onset ? h('span', { class: 'muted' }, ` since ${date(p.onset)}`) : '')));
  },
  medications(list) {
    return h('ul', {}, list.map((m) => h('li', {}, concept(m.medication), m.dosage ? ` — ${m.dosage}` : '',
      m.status && m.status !== 'active' ? h('span', { class: 'muted' }, ` (${m.status})`) : '')));
  },
  vital_signs(list) {
    return h('div', {}, list.map((v) => {
      const latest = v.latest || {};
      const value = latest.diastolic !== undefined && latest.diastolic !== null ? `${latest.value}/${latest.diastolic}` : `${latest.value}`;
      const label = isConcept(v.label) ? v.label.text : String(v.kind || '').replace(/_/g, ' ');
      return h('div', { class: 'vital' },
        h('span', {}, concept(v.label || label)),
        sparkline((v.trend || []).map((p) => p.value), { label: `${label} trend, ${(v.trend || []).length} readings` }),
        h('span', { title: date(latest.at) }, h('strong', {}, value), ` ${latest.unit || ''}`));
    }));
  },
  labs(list) {
    return h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Test'), h('th', { scope: 'col' }, 'Result'), h('th', { scope: 'col' }, 'Range'), h('th', { scope: 'col' }, 'Date'))),
      h('tbody', {}, list.map((l) => h('tr', {},
        h('td', {}, concept(l.test)),
        h('td', {}, l.value || '', l.abnormal || (l.flag && l.flag.code !== 'N') ? h('span', { class: 'flag', title: l.flag?.source === 'computed' ? 'flag computed from the reference range' : 'flag reported by the lab' }, ` ${l.flag?.code || '!'}`) : ''),
        h('td', {}, l.reference_range || ''),
        h('td', {}, date(l.at)))))));
  },
  immunizations(list) {
    return h('ul', {}, list.map((i) => h('li', {}, concept(i.vaccine), i.date ? h('span', { class: 'muted' }, ` ${date(i.date)}`) : '')));
  },
  encounters(list) {
    return h('ul', {}, list.map((e) => h('li', {}, date(e.start), ' ', concept(e.kind), e.reason ? h('span', { class: 'muted' }, ' — ', concept(e.reason)) : '')));
  },
};
renderers.vitals = renderers.vital_signs;

function generic(list) {
  return h('ul', {}, list.map((it) => {
    if (typeof it !== 'object' || it === null) return h('li', {}, String(it));
    const first = Object.values(it).find(isConcept);
    const rest = Object.entries(it).filter(([, v]) => typeof v === 'string' || typeof v === 'number').map(([k, v]) => `${k}: ${v}`);
    return h('li', {}, first ? concept(first) : '', rest.length ? h('span', { class: 'muted' }, ` ${rest.join(', ')}`) : '');
  }));
}
