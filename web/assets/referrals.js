// Referrals on the dashboard (issue 22): refer a visit's patient to another physician,
// picked from the public directory (GET /api/directory), during the visit or after it;
// and the Referrals card: what was referred to you (accept or decline, with a note for the
// referring physician) and what you sent, with the answers (GET /api/referrals?box=…).
// The limits are the server's (docs/api.md: reason and note 1–2000 characters).
import { $, h, time } from './ui.js';
import { api } from './api.js';
import { t } from './i18n.js';

const MAX_TEXT = 2000;
const URGENCIES = ['routine', 'urgent', 'asap'];
const REFRESH_MS = 30000;

/** "Cardiology, Family medicine" after the name, so two namesakes can be told apart. */
const physicianLabel = (l) => (l.specialties?.length ? `${l.display_name} — ${l.specialties.join(', ')}` : l.display_name);

/**
 * A form to refer the patient of `visit` to another listed physician. `prefix` keeps the
 * ids of two forms apart (beside the call, after it); `me` (staff id) is not offered.
 * `onSent(referral)` after the server kept it.
 */
export function referForm({ visit, me, prefix, onSent = () => {} }) {
  const id = (x) => `${prefix}-${x}`;
  const to = h('select', { id: id('to'), name: 'to', required: true });
  const reason = h('textarea', { id: id('reason'), name: 'reason', maxlength: MAX_TEXT, rows: 3, required: true, autocomplete: 'off' });
  // Static text carries its key (data-i18n): the language picker relabels it in place.
  const text = (tag, key, attrs = {}) => h(tag, { ...attrs, dataset: { i18n: key } }, t(key));
  const urgency = h('select', { id: id('urgency'), name: 'urgency' }, URGENCIES.map((u) => text('option', `ref.urgency_${u}`, { value: u })));
  const status = h('p', { id: id('status'), role: 'status', 'aria-live': 'polite' });
  const send = text('button', 'ref.send', { type: 'submit', disabled: true });
  const form = h('form', { id: id('form'), class: 'refer-form', novalidate: true },
    text('label', 'ref.to', { for: to.id }), to,
    text('p', 'ref.to_hint', { class: 'field-hint', id: id('to-hint') }),
    text('label', 'ref.reason', { for: reason.id }), reason,
    text('label', 'ref.urgency', { for: urgency.id }), urgency,
    h('div', { class: 'row' }, send), status);
  to.setAttribute('aria-describedby', id('to-hint'));
  const names = new Map();

  (async () => {
    to.replaceChildren(text('option', 'ref.loading', { value: '' }));
    try {
      const list = (await api('GET', '/api/directory')).filter((l) => l.id !== me);
      for (const l of list) names.set(l.id, l.display_name);
      to.replaceChildren(
        text('option', list.length ? 'ref.pick' : 'ref.nobody_listed', { value: '' }),
        ...list.map((l) => h('option', { value: l.id }, physicianLabel(l))));
      send.disabled = !list.length;
    } catch (e) {
      to.replaceChildren(text('option', 'ref.directory_failed', { value: '' }));
      status.className = 'notice bad';
      status.textContent = e.message;
    }
  })();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const bad = !to.value ? to : !reason.value.trim() ? reason : null;
    if (bad) {
      status.className = 'notice bad';
      status.textContent = bad === to ? t('ref.pick_first') : t('ref.reason_required');
      bad.focus();
      return;
    }
    send.disabled = true;
    status.className = 'notice';
    status.textContent = t('ref.sending');
    try {
      const made = await api('POST', '/api/referrals', { visit, to: to.value, reason: reason.value.trim(), urgency: urgency.value });
      status.className = 'notice ok';
      status.textContent = t('ref.sent', { name: made.to_name || names.get(made.to) || '', urgency: t(`ref.urgency_${made.urgency}`) });
      reason.value = '';
      to.value = '';
      onSent(made);
    } catch (e) {
      status.className = 'notice bad';
      status.textContent = e.message;
      ({ to, reason })[e.body?.field]?.focus();
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

/**
 * The Referrals card (static markup in dashboard.html: #referrals): the inbox and the sent
 * box, asked again every 30 s, on "Refresh", and when told (`refresh()`). Returns
 * `{ refresh, relabel }`.
 */
export function referralsCard() {
  const state = { inbox: [], sent: [], loaded: false, error: null };
  const root = $('#referrals');

  const badge = (r) => h('span', { class: `badge ${r.status === 'accepted' ? 'ok' : r.status === 'declined' ? 'bad' : 'muted'} ref-status` }, t(`ref.status_${r.status}`));
  const urgencyBadge = (r) => h('span', { class: `badge ${r.urgency === 'routine' ? 'muted' : 'warn'}` }, t(`ref.urgency_${r.urgency}`));
  const patient = (r) => r.patient_name || t('ref.unnamed');

  function inboxItem(r) {
    const noteId = `ref-note-${r.id}`;
    const answer = async (how) => {
      const note = document.getElementById(noteId)?.value.trim() || '';
      const out = $(`#ref-out-${r.id}`);
      try {
        await api('POST', `/api/referrals/${encodeURIComponent(r.id)}/${how}`, { note });
        $('#referrals-status').textContent = t(how === 'accept' ? 'ref.accepted_done' : 'ref.declined_done', { name: patient(r) });
        await refresh();
        // The buttons are gone with the answer: the referral itself keeps the focus.
        document.getElementById(`ref-in-${r.id}`)?.focus();
      } catch (e) {
        if (out) out.textContent = e.message;
        if (e.code === 'referral_answered') await refresh();
      }
    };
    return h('li', { id: `ref-in-${r.id}`, dataset: { referral: r.id, status: r.status }, tabindex: '-1' },
      h('div', { class: 'row' },
        h('span', { class: 'who' }, patient(r)), urgencyBadge(r), badge(r)),
      h('p', { class: 'muted' }, t('ref.from', { name: r.from_name || '', time: time(r.created_at) })),
      h('p', { class: 'ref-reason' }, r.reason),
      r.response_note ? h('p', {}, t('ref.your_note', { note: r.response_note })) : null,
      r.status === 'pending' ? h('div', {},
        h('label', { for: noteId }, t('ref.note_for', { name: r.from_name || '' })),
        h('textarea', { id: noteId, maxlength: MAX_TEXT, rows: 2, autocomplete: 'off', dataset: { keep: '1' } }),
        h('div', { class: 'row' },
          h('button', { type: 'button', id: `ref-accept-${r.id}`, onclick: () => answer('accept') }, t('ref.accept')),
          h('button', { type: 'button', class: 'secondary', id: `ref-decline-${r.id}`, onclick: () => answer('decline') }, t('ref.decline'))),
        h('p', { id: `ref-out-${r.id}`, class: 'form-error', role: 'alert' })) : null);
  }

  function sentItem(r) {
    return h('li', { dataset: { referral: r.id, status: r.status } },
      h('div', { class: 'row' },
        h('span', { class: 'who' }, patient(r)), urgencyBadge(r), badge(r)),
      h('p', { class: 'muted' }, t('ref.to_whom', { name: r.to_name || '', time: time(r.created_at) })),
      h('p', { class: 'ref-reason' }, r.reason),
      r.response_note ? h('p', { class: 'ref-answer' }, t('ref.their_note', { name: r.to_name || '', note: r.response_note })) : null);
  }

  function render() {
    const focusId = document.activeElement?.id;
    const typed = [...root.querySelectorAll('textarea[data-keep]')].map((el) => [el.id, el.value]).filter(([, v]) => v);
    const list = (sel, items, item, empty) => $(sel).replaceChildren(...(items.length ? items.map(item) : [h('li', { class: 'muted empty' }, t(empty))]));
    if (state.error) $('#referrals-status').textContent = t('ref.load_failed', { message: state.error });
    if (!state.loaded) return;
    list('#ref-inbox', state.inbox, inboxItem, 'ref.inbox_empty');
    list('#ref-sent', state.sent, sentItem, 'ref.sent_empty');
    const waiting = state.inbox.filter((r) => r.status === 'pending').length;
    $('#referrals-new').textContent = waiting ? t('ref.n_new', { n: waiting }) : '';
    for (const [id, value] of typed) { const el = document.getElementById(id); if (el) el.value = value; }
    if (focusId) document.getElementById(focusId)?.focus();
  }

  async function refresh() {
    try {
      const [inbox, sent] = await Promise.all([api('GET', '/api/referrals?box=inbox'), api('GET', '/api/referrals?box=sent')]);
      if (state.error) $('#referrals-status').textContent = '';
      Object.assign(state, { inbox, sent, loaded: true, error: null });
    } catch (e) {
      state.error = e.message;
    }
    render();
  }

  $('#referrals-refresh').addEventListener('click', refresh);
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  refresh();
  return { refresh, relabel: render };
}
