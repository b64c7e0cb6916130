// Shared helpers of the browser tests: a pushcore process per test, a second origin for the
// test page, a TCP proxy that can cut connections, Debian's Chromium through playwright-core,
// HS256 tokens, and bounded waits. Everything started here is stopped by PID or handle.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.PUSHCORE_BIN || path.join(ROOT, 'target/debug/pushcore');
export const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SECRET = 'pushcore-browser-tests-secret-0123456789';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns something truthy; throws after `timeout` ms. */
export async function waitFor(fn, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Everything one test started, stopped in reverse order by `close()`. */
export class Env {
  constructor() {
    this.stops = [];
  }
  defer(fn) {
    this.stops.push(fn);
  }
  async close() {
    for (const stop of this.stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        console.error('cleanup:', e);
      }
    }
  }

  /** `pushcore serve` on a free loopback port (or `listen`). */
  async server(args = [], listen = '127.0.0.1:0') {
    const proc = spawn(BIN, ['serve', '--listen', listen, '--workers', '2', '--no-pin', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((r) => proc.once('exit', r));
    const addr = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`pushcore did not start: ${stderr}`)), 10000);
      proc.stdout.on('data', (d) => {
        out += d;
        const m = /pushcore listening on http:\/\/(\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`pushcore exited with ${code}: ${stderr}`));
      });
    });
    const server = {
      pid: proc.pid,
      url: `http://${addr}`,
      port: Number(addr.split(':').pop()),
      stderr: () => stderr,
      running: () => proc.exitCode === null && proc.signalCode === null,
      async stop(signal = 'SIGTERM') {
        if (!server.running()) return;
        process.kill(proc.pid, signal);
        const killer = setTimeout(() => server.running() && process.kill(proc.pid, 'SIGKILL'), 15000);
        await exited;
        clearTimeout(killer);
      },
    };
    this.defer(() => server.stop('SIGKILL'));
    return server;
  }

  /** The test page's origin: `/` is a blank page; `routes` add handlers; with `proxyTo`, any
   * other path is forwarded there (a same-origin reverse proxy). */
  async pageServer({ routes = {}, proxyTo = null } = {}) {
    const srv = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://page');
      if (routes[url.pathname]) return routes[url.pathname](req, res, url);
      if (url.pathname === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        return res.end('<!doctype html><meta charset="utf-8"><title>pushcore test page</title><p>test</p>');
      }
      if (url.pathname === '/favicon.ico') {
        res.writeHead(204);
        return res.end();
      }
      if (!proxyTo) {
        res.writeHead(404);
        return res.end();
      }
      const headers = { ...req.headers, connection: 'close' };
      const up = http.request(proxyTo + req.url, { method: req.method, headers, agent: false }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      req.pipe(up);
    });
    const sockets = new Set();
    srv.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    this.defer(
      () =>
        new Promise((r) => {
          for (const s of sockets) s.destroy();
          srv.close(r);
        }),
    );
    return { origin: `http://127.0.0.1:${srv.address().port}` };
  }

  /** A TCP proxy to `port`; `cut()` resets every connection through it (RST to the browser). */
  async proxy(port) {
    const pairs = new Set();
    const srv = net.createServer((client) => {
      const up = net.connect(port, '127.0.0.1');
      const pair = { client, up };
      pairs.add(pair);
      client.pipe(up);
      up.pipe(client);
      const drop = () => {
        pairs.delete(pair);
        client.destroy();
        up.destroy();
      };
      client.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const proxy = {
      url: `http://127.0.0.1:${srv.address().port}`,
      open: () => pairs.size,
      cut() {
        const n = pairs.size;
        for (const { client, up } of [...pairs]) {
          client.resetAndDestroy();
          up.destroy();
        }
        return n;
      },
    };
    this.defer(
      () =>
        new Promise((r) => {
          proxy.cut();
          srv.close(r);
        }),
    );
    return proxy;
  }

  /** Debian's Chromium, headless, with a fresh profile (one context: its tabs share an origin's
   * locks and broadcast channels). */
  async browser() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushcore-chromium-'));
    const context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-background-timer-throttling',
        '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows',
      ],
    });
    this.defer(async () => {
      await context.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return context;
  }

  /** A raw subscriber socket; resolves once the 200 head arrived. */
  async rawSubscriber(server, query) {
    const sock = net.connect(server.port, '127.0.0.1');
    this.defer(() => sock.destroy());
    await new Promise((resolve, reject) => {
      let head = '';
      sock.once('error', reject);
      sock.on('data', function first(d) {
        head += d;
        if (head.includes('\r\n\r\n')) {
          sock.off('data', first);
          if (head.startsWith('HTTP/1.1 200')) resolve();
          else reject(new Error(`subscribe answered ${head.split('\r\n')[0]}`));
        }
      });
      sock.write(`GET /events/stream?${query} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    sock.on('data', () => {}); // keep reading, so the server never stalls on this socket
    return sock;
  }
}

/** An HS256 JWT. */
export function jwt(claims, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = crypto.createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${sig}`;
}
export const nowSecs = () => Math.floor(Date.now() / 1000);

/** Publish one event; resolves to its id. */
export async function publish(server, channel, data, { token, eventType = 'update' } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/events/publish`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ channel, eventType, data }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${JSON.stringify(body)}`);
  return body.eventId;
}

/** Sum of a Prometheus metric's samples (on a connection closed right after). */
export async function metric(server, name) {
  const text = await new Promise((resolve, reject) => {
    const req = http.get(`${server.url}/metrics`, { agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('/metrics timed out')));
  });
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** Start an SSEClient in `page` (imported from `base`), recording into `window.__t`. */
export async function startClient(page, opts) {
  await page.evaluate(async ({ base, url, channels, tokenUrl, token, share }) => {
    const { SSEClient } = await import(`${base}/pushcore.js`);
    const t = (window.__t = { events: [], statuses: [], resets: [], tokenCalls: 0 });
    const options = {
      shareAcrossTabs: share,
      onStatus: (s, info) => t.statuses.push({ s, info, at: Date.now() }),
      onReset: (info) => t.resets.push(info),
    };
    if (tokenUrl) {
      options.token = async () => {
        t.tokenCalls++;
        return (await fetch(tokenUrl, { cache: 'no-store' })).text();
      };
    } else if (token) options.token = token;
    t.client = new SSEClient(url, channels, options);
    t.client.on('*', (data, meta) => t.events.push({ data, id: meta.id, type: meta.type }));
    t.client.connect();
  }, { share: false, tokenUrl: null, token: null, ...opts });
}

/** What the page's client has seen so far. */
export function clientState(page) {
  return page.evaluate(() => {
    const t = window.__t;
    return {
      events: t.events,
      statuses: t.statuses,
      resets: t.resets,
      tokenCalls: t.tokenCalls,
      status: t.client.status,
      role: t.client.role,
      closeReason: t.client.closeReason,
    };
  });
}

/** Record the event-stream requests a page makes, with all their headers. */
export function recordStreamRequests(page) {
  const seen = [];
  page.on('request', async (req) => {
    if (!req.url().includes('/events/stream')) return;
    const entry = { url: req.url(), headers: null };
    seen.push(entry);
    entry.headers = await req.allHeaders().catch(() => ({}));
  });
  return seen;
}

/** `a` and `b` as `<ms>-<seq>` ids: a < b. */
export function idLess(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am < bm || (am === bm && as < bs);
}
