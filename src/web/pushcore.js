// pushcore.js: the browser client of pushcore (ES module, no dependencies).
// Streams over fetch (Authorization and Last-Event-ID headers, status codes), parses the
// event stream by the WHATWG rules, resumes after every cut with the last id it delivered,
// backs off with full jitter, and shares one connection among all tabs of an origin.

const BASE_MS = 1000;
const CAP_MS = 30000;
const CONTROL = new Set(['connected', 'reset', 'shutdown', 'token-expired']);

/** Compare two event ids; `<ms>-<seq>` ids and decimal ids compare by number, others only by
 * equality (null when the order is unknown). */
export function compareIds(a, b) {
  if (a === b) return 0;
  const re = /^(\d+)(?:-(\d+))?$/;
  const x = re.exec(a), y = re.exec(b);
  if (!x || !y) return null;
  const d = Number(x[1]) - Number(y[1]);
  if (d !== 0) return Math.sign(d);
  return Math.sign(Number(x[2] || 0) - Number(y[2] || 0));
}

/** An incremental `text/event-stream` parser (WHATWG HTML, "Parsing an event stream").
 * `onEvent({type, data, id, hasId})` per dispatched event; `onRetry(ms)` per valid `retry:`. */
export class EventStreamParser {
  constructor(onEvent, onRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry || (() => {});
    this.rest = '';
    this.data = [];
    this.type = '';
    this.lastId = '';
    this.hasId = false;
    this.afterCR = false;
  }

  /** Feed decoded text (decode with `TextDecoder` in stream mode: it drops a leading BOM). */
  feed(text) {
    let buf = this.rest + text;
    // A CR ended the last chunk: it ended a line already, so an LF right after it is its pair.
    if (this.afterCR && buf.charCodeAt(0) === 10) buf = buf.slice(1);
    this.afterCR = false;
    let pos = 0;
    for (;;) {
      const cr = buf.indexOf('\r', pos);
      const lf = buf.indexOf('\n', pos);
      let end, next;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        next = buf.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
        if (cr === buf.length - 1) this.afterCR = true;
      } else if (lf >= 0) {
        end = lf;
        next = lf + 1;
      } else break;
      this.line(buf.slice(pos, end));
      pos = next;
    }
    this.rest = buf.slice(pos);
  }

  line(line) {
    if (line === '') return this.dispatch();
    if (line.charCodeAt(0) === 58) return; // ':' comment (heartbeat)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.type = value;
    else if (field === 'id') {
      if (!value.includes('\0')) {
        this.lastId = value;
        this.hasId = true;
      }
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) this.onRetry(Number(value));
    }
  }

  dispatch() {
    const hasId = this.hasId;
    this.hasId = false;
    if (this.data.length === 0) {
      this.type = '';
      return;
    }
    const ev = { type: this.type || 'message', data: this.data.join('\n'), id: this.lastId, hasId };
    this.data = [];
    this.type = '';
    this.onEvent(ev);
  }
}

/** Delay before attempt `n` (0-based): full jitter, uniform in [0, min(cap, base·2ⁿ)]. */
export function backoffMs(n, baseMs = BASE_MS, capMs = CAP_MS) {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(n, 30));
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds, or null. */
export function retryAfterMs(value, now = Date.now()) {
  if (value == null || value === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function report(err) {
  setTimeout(() => {
    throw err;
  });
}

/** A pushcore (or any SSE) stream with exact resume, backoff, token refresh and tab sharing. */
export class SSEClient {
  constructor(url, channels = [], options = {}) {
    this.url = String(url);
    this.channels = Array.isArray(channels) ? channels.slice() : [String(channels)];
    this.options = {
      token: undefined,
      onReset: undefined,
      onStatus: undefined,
      shareAcrossTabs: true,
      withCredentials: false,
      baseDelayMs: BASE_MS,
      maxDelayMs: CAP_MS,
      maxRetries: Infinity,
      lastEventId: undefined,
      ...options,
    };
    this.handlers = new Map();
    this.status = 'closed';
    this.closeReason = null;
    this.role = null; // 'leader' | 'follower' | 'alone' while connected
    this.lastEventId = this.options.lastEventId ?? null;
    this.retryMs = null; // the server's latest `retry:`
    this.gen = 0;
    this.running = false;
    this.abort = null;
    this.timer = null;
    this.wake = null;
    this.bc = null;
    this.lockAbort = null;
    this.releaseLock = null;
    this.cachedToken = undefined;
  }

  /** Listen to one event type (`'*'` for all); the callback gets (data, {id, type}). Returns
   * a function that removes the listener. */
  on(type, cb) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(cb);
    return () => this.off(type, cb);
  }

  off(type, cb) {
    this.handlers.get(type)?.delete(cb);
  }

  /** The stream URL with `channels=` added. */
  streamUrl() {
    const u = new URL(this.url, globalThis.location?.href);
    if (this.channels.length) u.searchParams.set('channels', this.channels.join(','));
    return u.toString();
  }

  connect() {
    if (this.running) return;
    this.running = true;
    this.closeReason = null;
    const gen = ++this.gen;
    const canShare =
      this.options.shareAcrossTabs &&
      typeof BroadcastChannel === 'function' &&
      globalThis.navigator?.locks?.request;
    if (canShare) this.share(gen);
    else {
      this.role = 'alone';
      this.loop(gen);
    }
  }

  disconnect() {
    this.stop('disconnected');
  }

  // ----- internals ---------------------------------------------------------------------------

  alive(gen) {
    return this.running && gen === this.gen;
  }

  stop(reason) {
    if (!this.running) return;
    this.running = false;
    this.gen++;
    this.closeReason = reason;
    this.abort?.abort();
    clearTimeout(this.timer);
    this.wake?.();
    this.lockAbort?.abort();
    this.releaseLock?.();
    if (this.bc) {
      if (this.role === 'leader') this.post({ k: 'status', s: 'reconnecting' });
      this.bc.close();
    }
    this.bc = null;
    this.role = null;
    this.setStatus('closed', { reason });
  }

  setStatus(status, info = {}) {
    if (this.role === 'leader' && status !== 'closed') this.post({ k: 'status', s: status, info });
    if (status === this.status && status !== 'reconnecting') return;
    this.status = status;
    try {
      this.options.onStatus?.(status, info);
    } catch (e) {
      report(e);
    }
  }

  post(msg) {
    try {
      this.bc?.postMessage(msg);
    } catch (e) {
      report(e);
    }
  }

  async token(fresh) {
    const t = this.options.token;
    if (typeof t !== 'function') return t ?? null;
    if (fresh || this.cachedToken === undefined) this.cachedToken = await t();
    return this.cachedToken ?? null;
  }

  sleep(ms, gen) {
    return new Promise((resolve) => {
      if (!this.alive(gen)) return resolve();
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }

  backoff(attempt) {
    return backoffMs(attempt, this.retryMs ?? this.options.baseDelayMs, this.options.maxDelayMs);
  }

  /** Connect, read, reconnect until stopped. */
  async loop(gen) {
    let attempt = 0;
    let fresh = false;
    let unauthorized = 0;
    if (this.status !== 'open') this.setStatus('connecting');
    while (this.alive(gen)) {
      let delay;
      const ctrl = new AbortController();
      this.abort = ctrl;
      try {
        const headers = { Accept: 'text/event-stream' };
        const token = await this.token(fresh);
        fresh = false;
        if (!this.alive(gen)) break;
        if (token) headers.Authorization = `Bearer ${token}`;
        if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
        const res = await fetch(this.streamUrl(), {
          headers,
          signal: ctrl.signal,
          cache: 'no-store',
          credentials: this.options.withCredentials ? 'include' : 'same-origin',
        });
        const type = res.headers.get('Content-Type') || '';
        if (res.status === 200 && type.startsWith('text/event-stream')) {
          attempt = 0;
          unauthorized = 0;
          this.setStatus('open');
          const end = await this.read(res, gen);
          if (!this.alive(gen)) break;
          if (end.tokenExpired) {
            fresh = true;
            delay = 0;
          } else if (end.shutdown) {
            delay = this.retryMs ?? this.backoff(0); // the server already jittered its retry:
          } else delay = this.backoff(attempt++);
        } else {
          let message = res.statusText;
          try {
            const body = await res.json();
            if (body && typeof body.error === 'string') message = body.error;
          } catch {
            /* not JSON */
          }
          if (res.status === 401) {
            // The token expired or was revoked: ask for a new one, once at once, then back off.
            fresh = true;
            delay = unauthorized++ === 0 ? 0 : this.backoff(attempt++);
          } else if (res.status === 503 || res.status === 429) {
            const wait = retryAfterMs(res.headers.get('Retry-After'));
            delay = wait == null ? this.backoff(attempt) : wait + Math.random() * BASE_MS;
            attempt++;
          } else if (res.status >= 400 && res.status < 500 && res.status !== 408) {
            return this.fail(`${res.status} ${message}`.trim(), gen);
          } else delay = this.backoff(attempt++);
        }
      } catch (e) {
        if (!this.alive(gen)) break;
        delay = this.backoff(attempt++); // network error, CORS refusal, stream cut
      }
      if (attempt > this.options.maxRetries) {
        return this.fail(`gave up after ${attempt} attempts`, gen);
      }
      this.setStatus('reconnecting', { delayMs: Math.round(delay), attempt });
      await this.sleep(delay, gen);
    }
  }

  fail(reason, gen) {
    if (!this.alive(gen)) return;
    if (this.role === 'leader') this.post({ k: 'failed', reason });
    this.stop(reason);
  }

  /** Read one response body; resolves when it ends (or is cut). */
  async read(res, gen) {
    const end = { shutdown: false, tokenExpired: false };
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const parser = new EventStreamParser(
      (ev) => {
        if (!this.alive(gen)) return;
        if (ev.type === 'shutdown') end.shutdown = true;
        if (ev.type === 'token-expired') end.tokenExpired = true;
        this.wire(ev);
      },
      (ms) => {
        this.retryMs = ms;
      },
    );
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !this.alive(gen)) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    return end;
  }

  /** An event from the server (this tab leads or is alone). */
  wire(ev) {
    if (ev.hasId && !this.accept(ev.id)) return;
    if (this.role === 'leader') this.post({ k: 'event', ev });
    this.deliver(ev);
  }

  /** True when `id` is new: later than the last id delivered. */
  accept(id) {
    if (this.lastEventId != null) {
      const c = compareIds(id, this.lastEventId);
      if (c === 0 || c === -1) return false;
    }
    this.lastEventId = id;
    return true;
  }

  deliver(ev) {
    const data = parseData(ev.data);
    const meta = { id: ev.hasId ? ev.id : null, type: ev.type };
    if (ev.type === 'reset') {
      try {
        this.options.onReset?.(data);
      } catch (e) {
        report(e);
      }
    }
    if (CONTROL.has(ev.type) && !this.handlers.has(ev.type)) return;
    for (const key of [ev.type, '*']) {
      for (const cb of this.handlers.get(key) || []) {
        try {
          cb(data, meta);
        } catch (e) {
          report(e);
        }
      }
    }
  }

  /** Tab sharing: the tab holding the Web Lock streams and rebroadcasts; the others listen. */
  share(gen) {
    const key = `pushcore:${this.streamUrl()}`;
    this.bc = new BroadcastChannel(key);
    this.role = 'follower';
    this.bc.onmessage = (m) => this.shared(m.data, gen);
    this.setStatus('connecting');
    this.post({ k: 'hello' });
    this.lockAbort = new AbortController();
    navigator.locks
      .request(key, { signal: this.lockAbort.signal }, () => {
        if (!this.alive(gen)) return undefined;
        this.role = 'leader';
        // A hand-over resumes from the last id this tab delivered: the gap is replayed, and
        // anything the old leader already broadcast is dropped as a duplicate.
        return new Promise((resolve) => {
          this.releaseLock = resolve;
          this.loop(gen).finally(resolve);
        });
      })
      .catch(() => {});
  }

  shared(msg, gen) {
    if (!this.alive(gen) || !msg) return;
    if (this.role === 'leader') {
      if (msg.k === 'hello') this.post({ k: 'welcome', s: this.status, lastEventId: this.lastEventId });
      // An old leader's last words, arriving after this tab took over: new ones are delivered
      // here (the other tabs got them from the old leader); the replay then skips them.
      else if (msg.k === 'event' && msg.ev.hasId && this.accept(msg.ev.id)) this.deliver(msg.ev);
      return;
    }
    if (msg.k === 'event') {
      if (msg.ev.hasId && !this.accept(msg.ev.id)) return;
      this.deliver(msg.ev);
    } else if (msg.k === 'welcome') {
      if (this.lastEventId == null && msg.lastEventId) this.lastEventId = msg.lastEventId;
      if (msg.s !== 'closed') this.setStatus(msg.s);
    } else if (msg.k === 'status') {
      this.setStatus(msg.s, msg.info || {});
    }
    // 'failed': this tab tries itself when the lock comes to it, and fails on its own account.
  }
}
