// One WebSocket to /ws speaking docs/protocol.md: hello first, heartbeat answers,
// reconnect with backoff (using the newest `token` and the `resume_token` when the page
// still holds its peer connections), and a handler per message type.

const FATAL = new Set([
  'unauthenticated', 'token_expired', 'visit_closed', 'room_not_found', 'room_full',
  'superseded', 'hello_required', 'unsupported_version', 'forbidden', 'not_your_room',
]);

export class Signal {
  /**
   * @param {() => string|undefined} token   the token to say hello with (read at each
   *   connect); none for staff pages, whose HttpOnly session cookie authenticates the upgrade
   * @param {object} opts          { onState(state, detail), onFatal(code, message), canResume() }
   */
  constructor(token, opts = {}) {
    this.token = token;
    this.opts = opts;
    this.handlers = new Map();
    this.resumeToken = null;
    /** Who this connection is (`welcome`): a chat line from it is "you". */
    this.participant = null;
    this.ws = null;
    this.attempt = 0;
    this.closedForGood = false;
    this.welcomed = false;
    this.pingSentAt = 0;
    this.rttMs = null;
    this.iceServers = [];
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  off(type, fn) {
    const list = this.handlers.get(type) || [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  emit(type, msg) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        const r = fn(msg);
        if (r && typeof r.catch === 'function') r.catch((e) => console.error(`handler ${type}`, e));
      } catch (e) { console.error(`handler ${type}`, e); }
    }
  }

  connect() {
    this.closedForGood = false;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.welcomed = false;
    this.opts.onState?.(this.attempt ? 'reconnecting' : 'connecting');
    ws.onopen = () => {
      const hello = { type: 'hello', v: 1 };
      const token = this.token();
      if (token) hello.token = token;
      if (this.resumeToken && (this.opts.canResume?.() ?? true)) hello.resume = this.resumeToken;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.receive(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closedForGood) return;
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  receive(msg) {
    switch (msg.type) {
      case 'welcome':
        this.welcomed = true;
        this.attempt = 0;
        this.resumeToken = msg.resume_token || this.resumeToken;
        this.participant = msg.participant;
        this.iceServers = msg.ice_servers || [];
        this.opts.onState?.('connected');
        break;
      case 'ping':
        this.send({ type: 'pong' });
        break;
      case 'pong':
        if (this.pingSentAt) this.rttMs = Math.round(performance.now() - this.pingSentAt);
        this.pingSentAt = 0;
        break;
      case 'ice_servers':
        this.iceServers = msg.ice_servers || this.iceServers;
        break;
      case 'going_away':
        // Reconnect (to any node) after the server's hint; keep the resume token.
        this.opts.onState?.('reconnecting');
        this.dropAndReconnect(msg.reconnect_after_ms ?? 1000);
        break;
      case 'error':
        if (FATAL.has(msg.code) && (!this.welcomed || ['visit_closed', 'superseded', 'token_expired', 'unauthenticated', 'room_not_found', 'room_full'].includes(msg.code))) {
          this.closedForGood = true;
          this.opts.onFatal?.(msg.code, msg.message);
        }
        break;
      default:
        break;
    }
    this.emit(msg.type, msg);
    this.emit('*', msg);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && (this.welcomed || msg.type === 'hello')) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /** Round trip to the server, in ms (ping/pong). */
  async measureRtt(timeoutMs = 3000) {
    this.rttMs = null;
    this.pingSentAt = performance.now();
    this.send({ type: 'ping' });
    const t0 = performance.now();
    while (this.rttMs === null && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
    return this.rttMs;
  }

  dropAndReconnect(afterMs) {
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = null; try { ws.close(); } catch { /* already closed */ } }
    this.attempt += 1;
    setTimeout(() => this.connect(), afterMs);
  }

  scheduleReconnect() {
    this.attempt += 1;
    // 0.5 s, 1 s, 2 s … up to 15 s, with jitter so a restarted server is not stampeded.
    const base = Math.min(15000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    const wait = base / 2 + Math.random() * base / 2;
    this.opts.onState?.('reconnecting', { inMs: wait });
    setTimeout(() => { if (!this.closedForGood) this.connect(); }, wait);
  }

  close() {
    this.closedForGood = true;
    if (this.ws) { try { this.ws.close(1000); } catch { /* closed */ } }
    this.ws = null;
  }
}
