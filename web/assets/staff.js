// Sign-in for the staff pages (dashboard, admin): shows #signin until a session exists.
import { $, h } from './ui.js';
import { signIn, signOut, currentStaff, hasRole } from './api.js';
import { t, apply } from './i18n.js';

/** Resolves with the session once the user is signed in with `role`. */
export async function requireStaff(role) {
  const s = await currentStaff();
  if (s && hasRole(s, role)) return enter(s);
  return new Promise((resolve) => {
    if (!$('#forgot')) $('#signin').append(forgotHelp());
    $('#signin').hidden = false;
    $('#app').hidden = true;
    if (s) $('#signin-error').textContent = t('staff.wrong_role_signed_in', { email: s.staff?.email || '?', role: t(`staff.role_${role}`) });
    $('#signin-email').focus();
    $('#signin-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      $('#signin-error').textContent = '';
      try {
        const session = await signIn($('#signin-email').value.trim(), $('#signin-password').value);
        if (!hasRole(session, role)) { $('#signin-error').textContent = t('staff.wrong_role', { role: t(`staff.role_${role}`) }); return; }
        resolve(enter(session));
      } catch (e) {
        $('#signin-error').textContent = e.status === 401 || e.status === 403 ? t('staff.wrong_password') : e.message;
      }
    });
  });
}

/**
 * "Forgot your password?" under the sign-in form: there is no mail yet, so it says how an
 * admin's reset link works, and what to do when no admin can sign in.
 */
function forgotHelp() {
  const steps = ['staff.forgot_ask', 'staff.forgot_open', 'staff.forgot_no_admin'];
  const el = h('details', { id: 'forgot', class: 'forgot' },
    h('summary', { dataset: { i18n: 'staff.forgot' } }),
    h('ol', {}, steps.map((k) => h('li', { dataset: { i18n: k } }))),
    h('p', { class: 'field-hint', dataset: { i18n: 'staff.forgot_no_mail' } }));
  apply(el);
  return el;
}

function enter(s) {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#whoami').textContent = s.staff?.name || s.staff?.email || '';
  $('#signout').hidden = false;
  $('#signout').onclick = async () => { await signOut(); location.reload(); };
  return s;
}
