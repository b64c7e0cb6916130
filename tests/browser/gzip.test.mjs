// gzip compressed once: Chromium's own EventSource negotiates `Content-Encoding: gzip` with a
// `--gzip` server and receives every event as it is published (each event is a segment ending
// in a sync flush, and the stream never ends with a gzip trailer).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Env, metric, publish, waitFor } from './helpers.mjs';

test('a plain EventSource receives a gzip stream event by event', async () => {
  const env = new Env();
  try {
    const page0 = await env.pageServer({});
    const server = await env.server(['--gzip', '--cors-origin', page0.origin]);
    const page = await (await env.browser()).newPage();
    await page.goto(page0.origin);
    await page.evaluate((url) => {
      window.got = [];
      window.opened = false;
      const es = new EventSource(url);
      es.onopen = () => { window.opened = true; };
      es.addEventListener('update', (e) => window.got.push({ id: e.lastEventId, data: JSON.parse(e.data) }));
    }, `${server.url}/events/stream?channels=gz`);
    await waitFor(() => page.evaluate(() => window.opened), 'the EventSource to open');
    // Big enough to be deflated (not stored): a real compressed segment per event.
    const text = 'pushcore '.repeat(200);
    for (let n = 0; n < 5; n++) {
      await publish(server, 'gz', { n, text });
      // Each one arrives before the next is published: no event waits for a later segment.
      await waitFor(async () => (await page.evaluate(() => window.got.length)) === n + 1, `event ${n}`);
    }
    const got = await page.evaluate(() => window.got);
    assert.deepEqual(got.map((e) => e.data.n), [0, 1, 2, 3, 4]);
    assert.ok(got.every((e) => e.data.text === text));
    assert.ok((await metric(server, 'pushcore_gzip_streams_total')) >= 1, 'Chromium did not negotiate gzip');
  } finally {
    await env.close();
  }
});
