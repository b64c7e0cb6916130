// The dashboard in a real browser, and the routes that serve it and the client.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ARTIFACTS, Env, waitFor } from './helpers.mjs';

test('the dashboard loads with no console error and shows the subscribers the test created', async () => {
  const env = new Env();
  try {
    const server = await env.server(['--dashboard']);
    for (let i = 0; i < 50; i++) await env.rawSubscriber(server, 'channels=load');
    await env.rawSubscriber(server, 'channels=other,load');
    const context = await env.browser();
    const page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    const problems = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('request', (r) => !r.url().startsWith(server.url) && problems.push(`external: ${r.url()}`));
    await page.goto(`${server.url}/dashboard`);
    const text = (sel) => page.locator(sel).first().textContent();
    // 51 streams of ours plus the dashboard's own.
    await waitFor(async () => (await text('#subscribers')) === '52', 'the subscriber count', 10000);
    await waitFor(async () => (await text('tr[data-channel="load"] td.n')) === '51', 'the load channel', 10000);
    assert.equal(await text('tr[data-channel="other"] td.n'), '1');
    await waitFor(async () => (await text('#viewers')).startsWith('1 dashboard viewer'), 'the viewer count', 10000);
    assert.equal(await text('#status'), 'open');
    assert.match(await text('#version'), /^\d+\.\d+\.\d+/);
    assert.equal(await page.locator('#workers tr').count(), 2);
    // A few more snapshots so the charts have a line, then keep the picture.
    await waitFor(async () => /^([4-9]|\d\d+)s$|m/.test(await text('#uptime')), 'a few snapshots', 10000);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone`);
    assert.deepEqual(problems, []);
  } finally {
    await env.close();
  }
});

test('routes: the client is served with an ETag; the dashboard only with --dashboard', async () => {
  const env = new Env();
  try {
    const off = await env.server([]);
    const on = await env.server(['--dashboard']);
    const js = await fetch(`${off.url}/pushcore.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    assert.equal(js.headers.get('access-control-allow-origin'), '*');
    const etag = js.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.match(await js.text(), /export class SSEClient/);
    const again = await fetch(`${off.url}/pushcore.js`, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${off.url}/pushcore.d.ts`)).status, 200);
    assert.equal((await fetch(`${off.url}/dashboard`)).status, 404);
    assert.equal((await fetch(`${off.url}/dashboard/events`)).status, 404);
    const page = await fetch(`${on.url}/dashboard`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy'), /default-src 'none'/);
    // The feed's channel is not reachable through the public stream, with or without --dashboard.
    for (const server of [off, on]) {
      const res = await fetch(`${server.url}/events/stream?channels=%24dashboard`);
      assert.equal(res.status, 400);
    }
    const publish = await fetch(`${on.url}/events/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: '$dashboard', data: {} }),
    });
    assert.equal(publish.status, 400);
    // The feed itself is an event stream of `stats` events.
    const ctl = new AbortController();
    const bound = setTimeout(() => ctl.abort(), 10000);
    const feed = await fetch(`${on.url}/dashboard/events`, { signal: ctl.signal });
    assert.equal(feed.status, 200);
    const reader = feed.body.getReader();
    let got = '';
    await waitFor(async () => {
      const { value } = await reader.read();
      got += new TextDecoder().decode(value);
      return got.includes('event: stats\ndata: {');
    }, 'a stats event', 10000);
    clearTimeout(bound);
    ctl.abort();
    const data = JSON.parse(got.split('event: stats\ndata: ')[1].split('\n')[0]);
    assert.equal(data.workers.length, 2);
    assert.equal(typeof data.totals.deliveries, 'number');
  } finally {
    await env.close();
  }
});
