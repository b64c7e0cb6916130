// pushcore.js in a real browser: ordering, auth header, restarts, cuts, token expiry, 503, 403,
// and one connection shared by three tabs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Env, SECRET, clientState, idLess, jwt, metric, nowSecs, publish, recordStreamRequests,
  startClient, waitFor,
} from './helpers.mjs';

const openAt = (page) => waitFor(async () => (await clientState(page)).status === 'open', 'status open');
const count = async (page) => (await clientState(page)).events.length;

/** Publish `datas` on `channel`, never more than `window` events ahead of what `page` received. */
async function pacedPublish(server, page, channel, datas, { token, window = 5, before = 0 } = {}) {
  for (let i = 0; i < datas.length; i++) {
    await waitFor(async () => (await count(page)) >= before + i - window, `the page to keep up (${i})`);
    await publish(server, channel, datas[i], { token });
  }
}

function assertExactlyOnceInOrder(events, expected) {
  assert.deepEqual(events.map((e) => e.data), expected);
  for (let i = 1; i < events.length; i++) {
    assert.ok(idLess(events[i - 1].id, events[i].id), `ids increase at ${i}: ${events[i - 1].id} ${events[i].id}`);
  }
}

test('events arrive in order with JSON data; the token travels in Authorization, not the URL', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer({
      routes: {
        '/token': (req, res) => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.end(jwt({ subscribe: ['news'], exp: nowSecs() + 300 }));
        },
      },
    });
    const server = await env.server(['--jwt-secret', SECRET, '--cors-origin', page0.origin]);
    const page = await (await env.browser()).newPage();
    const requests = recordStreamRequests(page);
    await page.goto(page0.origin);
    await startClient(page, {
      base: server.url,
      url: `${server.url}/events/stream`,
      channels: ['news'],
      tokenUrl: `${page0.origin}/token`,
    });
    await openAt(page);
    const pubToken = jwt({ publish: ['news'], exp: nowSecs() + 300 });
    const datas = Array.from({ length: 20 }, (_, n) => ({ n, text: `é "quoted" ${n}`, list: [n, null, true] }));
    await pacedPublish(server, page, 'news', datas, { token: pubToken });
    await waitFor(async () => (await count(page)) === 20, '20 events');
    const st = await clientState(page);
    assertExactlyOnceInOrder(st.events, datas);
    assert.ok(st.events.every((e) => e.type === 'update'));
    assert.equal(requests.length, 1);
    await waitFor(() => requests[0].headers, 'request headers');
    assert.match(requests[0].headers.authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.ok(!requests[0].url.includes('token'), requests[0].url);
    assert.equal(requests[0].url, `${server.url}/events/stream?channels=news`);
    assert.equal(st.tokenCalls, 1);
  } finally {
    await env.close();
  }
});

test('server stopped with SIGTERM and restarted: the client reconnects, onReset says previous-run', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer();
    const args = ['--retry', '200', '--cors-origin', page0.origin];
    const first = await env.server(args);
    const page = await (await env.browser()).newPage();
    const requests = recordStreamRequests(page);
    await page.goto(page0.origin);
    await startClient(page, { base: first.url, url: `${first.url}/events/stream`, channels: ['news'] });
    await openAt(page);
    await pacedPublish(first, page, 'news', [{ n: 0 }, { n: 1 }, { n: 2 }]);
    await waitFor(async () => (await count(page)) === 3, '3 events');
    await first.stop('SIGTERM');
    const second = await env.server(args, `127.0.0.1:${first.port}`);
    await waitFor(async () => (await clientState(page)).resets.length > 0, 'onReset');
    await openAt(page);
    await pacedPublish(second, page, 'news', [{ n: 3 }, { n: 4 }, { n: 5 }], { before: 3 });
    await waitFor(async () => (await count(page)) === 6, '6 events');
    const st = await clientState(page);
    assert.deepEqual(st.events.map((e) => e.data.n), [0, 1, 2, 3, 4, 5]);
    assert.equal(st.resets.length, 1);
    assert.equal(st.resets[0].reason, 'previous-run');
    assert.equal(st.resets[0].requested, st.events[2].id);
    assert.ok(st.statuses.some((s) => s.s === 'reconnecting'));
    const last = requests.at(-1);
    await waitFor(() => last.headers, 'request headers');
    assert.equal(last.headers['last-event-id'], st.events[2].id);
  } finally {
    await env.close();
  }
});

test('connections reset mid-stream while events are published: each event exactly once, in order', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer();
    const server = await env.server(['--retry', '100', '--cors-origin', page0.origin]);
    const proxy = await env.proxy(server.port);
    const page = await (await env.browser()).newPage();
    const requests = recordStreamRequests(page);
    await page.goto(page0.origin);
    await startClient(page, { base: server.url, url: `${proxy.url}/events/stream`, channels: ['feed'] });
    await openAt(page);
    const total = 60;
    let cuts = 0;
    for (let n = 0; n < total; n++) {
      await waitFor(async () => (await count(page)) >= n - 5, `the page to keep up (${n})`);
      await publish(server, 'feed', { n });
      if (n % 15 === 7) {
        // Cut while the stream is busy; the next events are published while the client is away.
        await waitFor(() => proxy.open() > 0, 'a connection through the proxy');
        cuts += proxy.cut();
      }
    }
    await waitFor(async () => (await count(page)) >= total, `${total} events`);
    const st = await clientState(page);
    assertExactlyOnceInOrder(st.events, Array.from({ length: total }, (_, n) => ({ n })));
    assert.ok(cuts >= 4, `cut ${cuts} connections`);
    assert.ok(requests.length >= 5, `${requests.length} stream requests`);
    await waitFor(() => requests.every((r) => r.headers), 'request headers');
    for (const r of requests.slice(1)) assert.match(r.headers['last-event-id'] || '', /^\d+-\d+$/);
  } finally {
    await env.close();
  }
});

test('token expiry: token() is called again, the gap is replayed, nothing twice', async () => {
  const env = new Env();
  try {
    let calls = 0;
    let release;
    const held = new Promise((r) => (release = r));
    const page0 = await env.pageServer({
      routes: {
        '/token': async (req, res) => {
          calls++;
          // The first token expires within a couple of seconds (the server allows 5 s of skew);
          // the second is handed out only when the test says so.
          let exp = nowSecs() - 3;
          if (calls > 1) {
            await held;
            exp = nowSecs() + 300;
          }
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
          res.end(jwt({ subscribe: ['news'], exp }));
        },
      },
    });
    const server = await env.server(['--jwt-secret', SECRET, '--retry', '100', '--cors-origin', page0.origin]);
    const token = jwt({ publish: ['news'], exp: nowSecs() + 300 });
    const page = await (await env.browser()).newPage();
    const requests = recordStreamRequests(page);
    await page.goto(page0.origin);
    await startClient(page, {
      base: server.url,
      url: `${server.url}/events/stream`,
      channels: ['news'],
      tokenUrl: `${page0.origin}/token`,
    });
    await openAt(page);
    let n = 0;
    // Events flow until the stream ends with token-expired and the client asks for a new token.
    await waitFor(async () => {
      if ((await count(page)) >= n) await publish(server, 'news', { n: n++ }, { token });
      return calls >= 2;
    }, 'token() to be called again', 20000);
    const before = n;
    for (let i = 0; i < 5; i++) await publish(server, 'news', { n: n++ }, { token }); // the gap
    release();
    await waitFor(async () => (await count(page)) === n, `the ${n - before} events of the gap`);
    await pacedPublish(server, page, 'news', [{ n: n++ }, { n: n++ }], { token, before: n - 2 });
    await waitFor(async () => (await count(page)) === n, `${n} events`);
    const st = await clientState(page);
    assertExactlyOnceInOrder(st.events, Array.from({ length: n }, (_, i) => ({ n: i })));
    assert.equal(st.tokenCalls, 2);
    assert.equal(st.resets.length, 0);
    assert.equal(requests.length, 2);
    await waitFor(() => requests.every((r) => r.headers), 'request headers');
    assert.notEqual(requests[0].headers.authorization, requests[1].headers.authorization);
    // It resumed from the last event it had delivered: one published before the gap.
    const resumedAt = st.events.findIndex((e) => e.id === requests[1].headers['last-event-id']);
    assert.ok(resumedAt >= 0 && resumedAt < before, `resumed after event ${resumedAt}`);
  } finally {
    await env.close();
  }
});

test('503 at capacity: the client waits at least Retry-After, then connects', async () => {
  const env = new Env();
  try {
    const server = await env.server(['--max-connections', '2']);
    // Same origin through a reverse proxy: the server answers 503 at accept, before it has read
    // the request's Origin, so a cross-origin page could not read it (see the README).
    const page0 = await env.pageServer({ proxyTo: server.url });
    const page = await (await env.browser()).newPage();
    await page.goto(page0.origin);
    await page.evaluate(async (base) => import(`${base}/pushcore.js`), page0.origin);
    // Take both slots (retrying while the connection that fetched the module is closing).
    const holders = [];
    await waitFor(async () => {
      const h = await env.rawSubscriber(server, 'channels=hold').catch(() => null);
      if (h) holders.push(h);
      return holders.length === 2;
    }, 'both connection slots');
    const refusals = [];
    page.on('response', (r) => r.url().includes('/events/stream') && refusals.push(r.status()));
    await startClient(page, { base: page0.origin, url: `${page0.origin}/events/stream`, channels: ['news'] });
    const refused = await waitFor(async () => (await clientState(page)).statuses.find((s) => s.s === 'reconnecting'), 'the 503');
    for (const h of holders) h.destroy();
    const opened = await waitFor(async () => (await clientState(page)).statuses.find((s) => s.s === 'open'), 'open', 20000);
    assert.equal(refusals[0], 503);
    assert.ok(refused.info.delayMs >= 5000, `waited ${refused.info.delayMs} ms`);
    assert.ok(opened.at - refused.at >= 5000, `connected ${opened.at - refused.at} ms after the 503`);
    await publish(server, 'news', { ok: true });
    await waitFor(async () => (await count(page)) === 1, 'an event after connecting');
  } finally {
    await env.close();
  }
});

test('403: the client stops and says why', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer();
    const server = await env.server(['--jwt-secret', SECRET, '--cors-origin', page0.origin]);
    const page = await (await env.browser()).newPage();
    const requests = recordStreamRequests(page);
    await page.goto(page0.origin);
    await startClient(page, {
      base: server.url,
      url: `${server.url}/events/stream`,
      channels: ['news'],
      token: jwt({ subscribe: ['other'], exp: nowSecs() + 300 }),
    });
    const st = await waitFor(async () => {
      const s = await clientState(page);
      return s.status === 'closed' && s;
    }, 'status closed');
    assert.match(st.closeReason, /^403 /);
    assert.match(st.statuses.at(-1).info.reason, /^403 /);
    assert.deepEqual(st.statuses.map((s) => s.s), ['connecting', 'closed']);
    // It does not come back: one request, still one after a while.
    await page.waitForTimeout(1500);
    assert.equal(requests.length, 1);
  } finally {
    await env.close();
  }
});

test('three tabs share one connection; closing the leader hands over with no loss and no duplicate', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer();
    const server = await env.server(['--retry', '100', '--cors-origin', page0.origin]);
    const context = await env.browser();
    const pages = [];
    for (let i = 0; i < 3; i++) {
      const p = await context.newPage();
      await p.goto(page0.origin);
      await startClient(p, { base: server.url, url: `${server.url}/events/stream`, channels: ['news'], share: true });
      pages.push(p);
    }
    for (const p of pages) await openAt(p);
    const roles = async () => Promise.all(pages.map(async (p) => (p.isClosed() ? 'gone' : (await clientState(p)).role)));
    await waitFor(async () => (await roles()).sort().join() === 'follower,follower,leader', 'one leader');
    await waitFor(async () => (await metric(server, 'pushcore_subscribers')) === 1, 'one subscriber at the server');
    const everyone = (list, n) => Promise.all(list.map(count)).then((c) => c.every((k) => k >= n));
    let n = 0;
    for (; n < 10; n++) {
      await waitFor(() => everyone(pages, n - 3), 'every tab to keep up');
      await publish(server, 'news', { n });
    }
    await waitFor(() => everyone(pages, 10), 'every tab to have 10 events');
    const leader = (await roles()).indexOf('leader');
    await pages[leader].close();
    const rest = pages.filter((p) => !p.isClosed());
    for (; n < 15; n++) await publish(server, 'news', { n }); // during the hand-over
    await waitFor(async () => (await roles()).filter((r) => r === 'leader').length === 1, 'a new leader');
    for (; n < 20; n++) {
      await waitFor(() => everyone(rest, n - 3), 'the remaining tabs to keep up');
      await publish(server, 'news', { n });
    }
    await waitFor(() => everyone(rest, 20), 'the remaining tabs to have 20 events');
    const expected = Array.from({ length: 20 }, (_, i) => ({ n: i }));
    for (const p of rest) assertExactlyOnceInOrder((await clientState(p)).events, expected);
    await waitFor(async () => (await metric(server, 'pushcore_subscribers')) === 1, 'one subscriber after the hand-over');
  } finally {
    await env.close();
  }
});
