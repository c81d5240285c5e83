// The physician's note of the visit just ended (issue 22): reason, findings, plan,
// follow-up, sent with POST /api/visits/{visit}/note. examroom keeps it, then writes it to the
// patient's record; the form says which: "Saved — sending to the record" until the server
// says "in_record" (asked again every 2 s for a minute, then on "Check again").
// The limits are the server's (docs/api.md); the server checks them again.
import { h } from './ui.js';
import { api } from './api.js';
import { t } from './i18n.js';

const LIMITS = { reason: 500, findings: 4000, plan: 4000, follow_up: 1000 };
const POLL_MS = 2000;
const POLL_FOR_MS = 60000;

/**
 * Show the note form for `visit` at the top of `host` (replacing an earlier one); `extra`
 * (the form to refer the patient, issue 22) goes under it, in the same card.
 */
export function offerNote(host, visit, { extra = null } = {}) {
  host.querySelector('#visit-note')?.remove();
  const field = (name, multi) => {
    const id = `note-${name}`;
    const attrs = { id, name, maxlength: LIMITS[name], autocomplete: 'off' };
    const input = multi ? h('textarea', { ...attrs, rows: 3 }) : h('input', { ...attrs, type: 'text', required: true });
    return h('div', { class: 'field' }, h('label', { for: id }, t(`note.${name}`)), input);
  };
  const status = h('p', { id: 'visit-note-status', role: 'status', 'aria-live': 'polite' });
  const send = h('button', { type: 'submit' }, t('note.save'));
  const again = h('button', { type: 'button', class: 'secondary small', hidden: true }, t('note.check_again'));
  const close = h('button', { type: 'button', class: 'secondary small' }, t('note.close'));
  const form = h('form', { id: 'visit-note-form' },
    field('reason', false), field('findings', true), field('plan', true), field('follow_up', true),
    h('div', { class: 'row' }, send, close));
  const box = h('section', { id: 'visit-note', class: 'card visit-note', 'aria-labelledby': 'visit-note-h' },
    h('h2', { id: 'visit-note-h' }, t('note.title')),
    h('p', { class: 'field-hint' }, t('note.hint')),
    form, status, again, extra);
  host.prepend(box);
  close.addEventListener('click', () => box.remove());

  const path = `/api/visits/${encodeURIComponent(visit)}/note`;
  let until = 0;
  const show = (note) => {
    const inRecord = note?.state === 'in_record';
    status.textContent = inRecord ? t('note.in_record') : t('note.sending');
    status.className = inRecord ? 'notice ok' : 'notice';
    box.dataset.state = inRecord ? 'in_record' : 'sending';
    again.hidden = inRecord || Date.now() < until;
    if (!inRecord && Date.now() < until) setTimeout(poll, POLL_MS);
  };
  const poll = async () => {
    try {
      show(await api('GET', path));
    } catch (e) {
      status.textContent = e.message || t('note.failed');
      again.hidden = false;
    }
  };
  again.addEventListener('click', () => { until = Date.now() + POLL_FOR_MS; again.hidden = true; poll(); });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(Object.keys(LIMITS).map((k) => [k, form.elements[k].value]));
    send.disabled = true;
    status.className = 'notice';
    status.textContent = t('note.saving');
    try {
      const note = await api('POST', path, body);
      // Kept as sent: what is in the record is not edited here. Close stays.
      for (const el of form.elements) if (el !== close) el.disabled = true;
      until = Date.now() + POLL_FOR_MS;
      show(note);
    } catch (err) {
      send.disabled = false;
      status.className = 'notice bad';
      status.textContent = err.message || t('note.failed');
      const bad = err.body?.field && form.elements[err.body.field];
      if (bad) bad.focus();
    }
  });
  // Ready to type, without moving the page (the form is at the top of the lobby).
  form.elements.reason.focus({ preventScroll: true });
  return box;
}
