// One-time set-up link: first admin, invitation, or password reset. GET /api/setup/{token}
// says what the link is for without spending it (an invitation's e-mail is shown read-only,
// its name prefilled); POST /api/setup/{token} sets the password.
import { $, showOnly, expiryText, clinicContact } from './ui.js';
import { api, adoptSession } from './api.js';
import { t, staffLang } from './i18n.js';

const token = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
const state = { info: null, dead: null, done: null };

/** A link that cannot be used, in words: used, expired, unknown, or a deactivated account. */
function deadText(e) {
  if (e.code === 'already_used') return t('setup.dead_used');
  if (e.code === 'expired') return t('setup.dead_expired');
  if (e.code === 'account_deactivated') return t('setup.dead_deactivated');
  if (e.status === 404) return t('setup.dead_unknown');
  return e.message;
}

function render() {
  const info = state.info;
  if (info) {
    $('#setup-h').textContent = t(`setup.heading_${info.purpose}`);
    $('#setup-intro').textContent = t(`setup.intro_${info.purpose}`);
    $('#setup-expiry').textContent = info.expires_at ? `${expiryText(info.expires_at)} ${t('link.once')}` : '';
  }
  if (state.dead) {
    $('#dead-text').textContent = deadText(state.dead);
    clinicContact($('#dead-clinic'));
  }
  if (state.done) {
    const { res, name } = state.done;
    const roles = (res?.staff?.roles || []).map((r) => t(`staff.role_${r}`));
    $('#done-text').textContent = res?.token
      ? t('setup.signed_in', { name: res.staff?.name || name, roles: roles.length ? ` (${roles.join(', ')})` : '' })
      : t('setup.saved');
  }
}

async function lookUp() {
  try {
    state.info = await api('GET', `/api/setup/${encodeURIComponent(token)}`);
  } catch (e) {
    if (e.status === 404 || e.status === 410 || e.status === 403) {
      state.dead = e;
      render();
      showOnly('main > section', 'setup-dead');
      return;
    }
    // Unreachable for now: the form still works, and its answer will say what is wrong.
  }
  const info = state.info;
  if (info?.email) {
    $('#email').value = info.email;
    $('#email').readOnly = true;
    $('#email-hint').hidden = false;
  }
  if (info?.name && !$('#name').value) $('#name').value = info.name;
  render();
  (info?.email ? (info.name ? $('#password') : $('#name')) : $('#email')).focus();
}

document.addEventListener('DOMContentLoaded', async () => {
  await staffLang(render);
  $('#setup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('#setup-error');
    err.textContent = '';
    const email = $('#email').value.trim();
    const name = $('#name').value.trim();
    const password = $('#password').value;
    if (!email || !name) { err.textContent = t('setup.fill_in'); return; }
    if (password.length < 12) { err.textContent = t('setup.too_short'); $('#password').focus(); return; }
    if (password !== $('#password2').value) { err.textContent = t('setup.differ'); $('#password2').focus(); return; }
    try {
      const res = await api('POST', `/api/setup/${encodeURIComponent(token)}`, { email, name, password });
      adoptSession(res);
      state.done = { res, name };
      render();
      showOnly('main > section', 'setup-done');
    } catch (e) {
      if (e.status === 404 || e.status === 410 || e.code === 'account_deactivated') {
        state.dead = e;
        render();
        showOnly('main > section', 'setup-dead');
      } else err.textContent = e.message;
    }
  });
  await lookUp();
});
