// One-time set-up link: first admin, invitation, or password reset (POST /api/setup/{token}).
import { $, showOnly } from './ui.js';
import { api, adoptSession } from './api.js';

const token = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');

document.addEventListener('DOMContentLoaded', () => {
  $('#setup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('#setup-error');
    err.textContent = '';
    const email = $('#email').value.trim();
    const name = $('#name').value.trim();
    const password = $('#password').value;
    if (!email || !name) { err.textContent = 'Please fill in your email and name.'; return; }
    if (password.length < 12) { err.textContent = 'The password needs at least 12 characters.'; $('#password').focus(); return; }
    if (password !== $('#password2').value) { err.textContent = 'The two passwords differ.'; $('#password2').focus(); return; }
    try {
      const res = await api('POST', `/api/setup/${encodeURIComponent(token)}`, { email, name, password });
      adoptSession(res);
      const roles = res?.staff?.roles || [];
      $('#done-text').textContent = res?.token
        ? `Signed in as ${res.staff?.name || name}${roles.length ? ` (${roles.join(', ')})` : ''}.`
        : 'Your password is saved. Sign in with your email and the new password.';
      showOnly('main > section', 'setup-done');
    } catch (e) {
      err.textContent = e.status === 404 || e.status === 410
        ? 'This set-up link is not valid any more (used or expired). Ask an admin for a new one.'
        : e.message;
    }
  });
});
