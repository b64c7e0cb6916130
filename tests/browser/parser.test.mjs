// pushcore.js's pure parts, in Node: the WHATWG event-stream parser (fed whole and split at
// every byte), id order, Retry-After and the backoff bounds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStreamParser, backoffMs, compareIds, retryAfterMs } from '../../src/web/pushcore.js';

function parse(chunks) {
  const events = [];
  const retries = [];
  const p = new EventStreamParser((e) => events.push(e), (ms) => retries.push(ms));
  const decoder = new TextDecoder();
  for (const c of chunks) p.feed(decoder.decode(Buffer.from(c), { stream: true }));
  return { events, retries };
}

const ev = (type, data, id = '', hasId = false) => ({ type, data, id, hasId });

// (stream, events, retries)
const rows = [
  ['data: a\n\n', [ev('message', 'a')], []],
  ['data:a\n\n', [ev('message', 'a')], []],
  ['data:  a\n\n', [ev('message', ' a')], []],
  ['id: 1-0\nevent: update\ndata: {"x":1}\n\n', [ev('update', '{"x":1}', '1-0', true)], []],
  ['data: a\ndata: b\n\n', [ev('message', 'a\nb')], []],
  ['data: a\r\ndata: b\r\n\r\n', [ev('message', 'a\nb')], []],
  ['data: a\rdata: b\r\r', [ev('message', 'a\nb')], []],
  ['data\n\n', [ev('message', '')], []],
  ['data:\n\n', [ev('message', '')], []],
  [': heartbeat\n\n', [], []],
  ['event: x\n\n', [], []],
  ['retry: 250\n\n', [], [250]],
  ['retry: 2x\nretry: -1\n\n', [], []],
  ['id: 5-0\ndata: a\n\nevent: connected\ndata: b\n\n', [ev('message', 'a', '5-0', true), ev('connected', 'b', '5-0', false)], []],
  ['id: a\0b\ndata: x\n\n', [ev('message', 'x')], []],
  ['id\ndata: x\n\n', [ev('message', 'x', '', true)], []],
  ['\uFEFFdata: bom\n\n', [ev('message', 'bom')], []],
  ['data: é ✓ 😀\n\n', [ev('message', 'é ✓ 😀')], []],
  ['unknown: field\ndata: a\n\n', [ev('message', 'a')], []],
  ['data: never dispatched', [], []],
  ['data: a\n', [], []],
];

test('event-stream rows, whole and split at every byte', () => {
  for (const [stream, events, retries] of rows) {
    const whole = parse([stream]);
    assert.deepEqual(whole.events, events, JSON.stringify(stream));
    assert.deepEqual(whole.retries, retries, JSON.stringify(stream));
    const bytes = [...Buffer.from(stream)].map((b) => [b]);
    assert.deepEqual(parse(bytes).events, events, `bytewise ${JSON.stringify(stream)}`);
  }
});

test('ids compare by time then sequence; unknown shapes only by equality', () => {
  const rows = [
    ['1-0', '1-0', 0], ['1-0', '1-1', -1], ['2-0', '1-9', 1], ['1700000000000-10', '1700000000000-9', 1],
    ['10', '9', 1], ['abc', 'abd', null], ['abc', 'abc', 0], ['1-0', 'x', null],
  ];
  for (const [a, b, want] of rows) assert.equal(compareIds(a, b), want, `${a} ${b}`);
});

test('Retry-After as seconds or a date; backoff stays within its full-jitter bounds', () => {
  assert.equal(retryAfterMs('5'), 5000);
  assert.equal(retryAfterMs(' 0 '), 0);
  assert.equal(retryAfterMs(null), null);
  assert.equal(retryAfterMs('soon'), null);
  assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10000);
  for (let n = 0; n < 40; n++) {
    const d = backoffMs(n);
    assert.ok(d >= 0 && d <= Math.min(30000, 1000 * 2 ** n), `${n}: ${d}`);
  }
  assert.ok(backoffMs(100, 200, 500) <= 500);
});
