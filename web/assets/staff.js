// Sign-in for the staff pages (dashboard, admin): shows #signin until a session exists.
import { $ } from './ui.js';
import { signIn, signOut, currentStaff, hasRole } from './api.js';
import { t } from './i18n.js';

/** Resolves with the session once the user is signed in with `role`. */
export async function requireStaff(role) {
  const s = await currentStaff();
  if (s && hasRole(s, role)) return enter(s);
  return new Promise((resolve) => {
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

function enter(s) {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#whoami').textContent = s.staff?.name || s.staff?.email || '';
  $('#signout').hidden = false;
  $('#signout').onclick = async () => { await signOut(); location.reload(); };
  return s;
}
