// In-page dialogs instead of the browser's confirm()/prompt(): a modal <dialog> (the page
// behind it is inert), titled and described for screen readers, Tab kept inside it, Escape
// or "Cancel" cancels, Enter in the text field confirms. Focus returns where it was.
import { h } from './ui.js';
import { t } from './i18n.js';

let count = 0;

/**
 * Ask before something that cannot be undone. Resolves with null when cancelled, else with
 * the text typed (`input` names the optional text field) or ''.
 * `danger` styles the confirm button as destructive; focus starts on Cancel then, so an
 * Enter pressed by habit does not do it.
 */
export function confirmDialog({ title, text = '', confirm, cancel, danger = false, input = null, value = '' }) {
  count += 1;
  const id = `dlg-${count}`;
  const back = document.activeElement;
  const field = input ? h('input', { id: `${id}-input`, type: 'text', maxlength: 500, autocomplete: 'off', value }) : null;
  const no = h('button', { type: 'button', class: 'secondary', value: 'cancel' }, cancel || t('dialog.cancel'));
  const yes = h('button', { type: 'submit', class: danger ? 'danger' : '', value: 'ok' }, confirm || t('dialog.ok'));
  const form = h('form', { method: 'dialog' },
    h('h2', { id: `${id}-title` }, title),
    text ? h('p', { id: `${id}-text` }, text) : null,
    field ? [h('label', { for: field.id }, input), field] : null,
    h('div', { class: 'row dialog-actions' }, no, yes));
  const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': `${id}-title`, 'aria-describedby': text ? `${id}-text` : undefined }, form);
  document.body.append(dlg);
  return new Promise((resolve) => {
    let answer = null;
    form.addEventListener('submit', (e) => { e.preventDefault(); answer = field ? field.value : ''; dlg.close(); });
    no.addEventListener('click', () => dlg.close());
    // Escape: the browser fires `cancel` and closes; the answer stays null.
    dlg.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const stops = [...dlg.querySelectorAll('input, button')].filter((el) => !el.disabled);
      const i = stops.indexOf(document.activeElement);
      const next = e.shiftKey ? (i <= 0 ? stops.length - 1 : i - 1) : (i === stops.length - 1 ? 0 : i + 1);
      e.preventDefault();
      stops[next].focus();
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (back && back.isConnected) back.focus();
      resolve(answer);
    });
    dlg.showModal();
    (field || (danger ? no : yes)).focus();
  });
}
