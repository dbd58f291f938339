// Unit tests of the tag's pure parts: node --test collectors/web/test/
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engagement, scrollDepth } from '../src/engage.js';
import { Play } from '../src/media.js';
import { extractMeta } from '../src/meta.js';
import { MAX, Queue } from '../src/queue.js';
import { cleanUrl, newId } from '../src/util.js';

// A DOM-like document: the few selectors extractMeta uses, over a list of elements.
function fakeDoc(els) {
  const match = (sel, el) => {
    const m = /^(\w+)(?:\[(\w+)="([^"]+)"\])?(?:\[(\w+)\])?$/.exec(sel);
    return el.tag === m[1] && (!m[2] || el.attrs[m[2]] === m[3]) && (!m[4] || m[4] in el.attrs);
  };
  const wrap = (el) => ({ getAttribute: (n) => el.attrs[n] ?? null, textContent: el.text || '' });
  return { querySelectorAll: (sel) => els.filter((el) => match(sel, el)).map(wrap) };
}
const meta = (attrs) => ({ tag: 'meta', attrs });
const ld = (obj) => ({ tag: 'script', attrs: { type: 'application/ld+json' }, text: JSON.stringify(obj) });

test('metadata: JSON-LD NewsArticle gives id, section, headline, published', () => {
  const doc = fakeDoc([
    ld({ '@context': 'https://schema.org', '@graph': [
      { '@type': 'WebPage', '@id': 'https://news1.vn/p', name: 'page' },
      { '@type': 'NewsArticle', identifier: 'a-123', articleSection: ['Thời sự', 'x'],
        headline: 'Tiêu đề', datePublished: '2025-10-31T08:00:00+07:00' },
    ] }),
    meta({ property: 'og:title', content: 'OG title' }),
  ]);
  assert.deepEqual(extractMeta(doc), {
    content_id: 'a-123', section: 'Thời sự', title: 'Tiêu đề', published: '2025-10-31T08:00:00+07:00',
  });
});

test('metadata: <meta> tags when there is no JSON-LD; pm: tags win; bad JSON-LD ignored', () => {
  const doc = fakeDoc([
    { tag: 'script', attrs: { type: 'application/ld+json' }, text: '{not json' },
    meta({ property: 'article:section', content: 'sport' }),
    meta({ property: 'article:published_time', content: '2025-11-01T00:00:00Z' }),
    meta({ property: 'og:title', content: 'OG title' }),
    { tag: 'link', attrs: { rel: 'canonical', href: 'https://news1.vn/a-9.html' } },
  ]);
  assert.deepEqual(extractMeta(doc), {
    content_id: 'https://news1.vn/a-9.html', section: 'sport', title: 'OG title',
    published: '2025-11-01T00:00:00Z',
  });
  const pm = fakeDoc([meta({ name: 'pm:content_id', content: 'c1' }), meta({ name: 'pm:section', content: 's1' }),
    meta({ property: 'article:section', content: 'other' })]);
  assert.deepEqual(extractMeta(pm), { content_id: 'c1', section: 's1' });
  assert.deepEqual(extractMeta(fakeDoc([])), {});
});

test('event ids: 22 chars of [A-Za-z0-9_-], distinct', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
});

test('urls: query and fragment dropped unless listed', () => {
  assert.equal(cleanUrl('https://news1.vn/a?email=x@y.vn&page=2#c'), 'https://news1.vn/a');
  assert.equal(cleanUrl('https://news1.vn/a?email=x@y.vn&page=2#c', ['page']), 'https://news1.vn/a?page=2');
  assert.equal(cleanUrl('not a url'), '');
});

test('engagement: active time plus a 5 s window, only while visible', () => {
  const e = new Engagement(0);
  assert.equal(e.take(5000), 0); // loaded, never active
  for (let t = 5000; t <= 17000; t += 500) e.activity(t); // 12 s of scrolling
  assert.equal(e.take(20000), 15000 - 0); // 5000..20000: active, window runs to 22000
  assert.equal(e.take(30000), 2000); // 20000..22000 then idle
  assert.equal(e.take(40000), 0);
  e.activity(40000);
  e.visibility(false, 41000); // hidden after 1 s: the rest is not engaged
  assert.equal(e.take(50000), 1000);
  e.visibility(true, 60000);
  assert.equal(e.take(65000), 0); // visible again but idle
  e.activity(65000);
  e.activity(66000);
  assert.equal(e.take(70000), 5000);
  assert.equal(e.take(80000), 1000);
});

test('scroll depth: percent of the page seen, clamped', () => {
  assert.equal(scrollDepth(0, 800, 4000), 20);
  assert.equal(scrollDepth(3200, 800, 4000), 100);
  assert.equal(scrollDepth(9999, 800, 4000), 100);
  assert.equal(scrollDepth(0, 800, 0), 0);
});

test('played_ms: advance of currentTime, seeks not counted, heartbeat every 10 s', () => {
  const p = new Play(0);
  assert.match(p.id, /^[A-Za-z0-9_-]{16}$/);
  for (let t = 0.25; t <= 9.75; t += 0.25) p.at(t);
  assert.equal(p.due(), false);
  p.at(10);
  assert.equal(p.due(), true);
  assert.equal(p.take(), 10000);
  p.at(11.5);
  p.at(95); // a jump: a seek, not playing
  p.at(96);
  assert.equal(p.take(), 2500);
  p.seek(30); // seeked back
  p.at(31.5);
  assert.equal(p.take(), 1500);
  assert.equal(p.take(), 0);
});

function memStore() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k), map: m };
}
function io(statuses, store = memStore()) {
  const sent = [];
  const timers = [];
  let clock = 1_000_000;
  return {
    sent, timers, store, key: 'pm_q_t',
    now: () => clock, tick: (ms) => { clock += ms; },
    timer: (f, ms) => { timers.push({ f, ms }); return timers.length; },
    post: (events) => { sent.push(events); return Promise.resolve(statuses.length ? statuses.shift() : 200); },
    beacon: (events) => { sent.push(events); return statuses.length ? statuses.shift() : true; },
    run: () => { const t = timers.splice(0); t.forEach((x) => x.f()); },
  };
}
const ev = (i, ts = 1_000_000) => ({ event_id: `e${i}`, type: 'page_view', ts });
const settle = () => new Promise((r) => setTimeout(r, 0));

test('batching: events wait 1 s to share a request; MAX at once flushes', async () => {
  const x = io([]);
  const q = new Queue(x);
  q.push(ev(1));
  q.push(ev(2));
  assert.equal(x.sent.length, 0);
  assert.deepEqual(x.timers.map((t) => t.ms), [1000]);
  x.run();
  await settle();
  assert.deepEqual(x.sent, [[ev(1), ev(2)]]);
  for (let i = 0; i < MAX; i++) q.push(ev(100 + i));
  assert.equal(x.sent.length, 2);
  assert.equal(x.sent[1].length, MAX);
  await settle();
  assert.equal(x.store.getItem(x.key), null); // all answered: nothing kept
});

test('retry: a failed batch stays in storage and is sent again (also by the next page)', async () => {
  const x = io([0, 503]);
  const q = new Queue(x);
  q.push(ev(1));
  x.run();
  await settle();
  assert.equal(JSON.parse(x.store.getItem(x.key)).length, 1);
  x.run(); // backoff timer: 503 again
  await settle();
  assert.deepEqual(x.timers.map((t) => t.ms), [10000]);
  // a new page load with the same storage sends it
  const y = io([], x.store);
  const q2 = new Queue(y);
  q2.flush();
  await settle();
  assert.deepEqual(y.sent, [[ev(1)]]);
  assert.equal(x.store.getItem(x.key), null);
  // a 4xx other than 429 cannot be fixed by retrying: dropped
  const z = io([400]);
  const q3 = new Queue(z);
  q3.push(ev(2));
  z.run();
  await settle();
  assert.equal(z.store.getItem(z.key), null);
});

test('retry: a batch claimed by another tab is not sent twice; stale events expire', async () => {
  const x = io([0]);
  new Queue(x).push(ev(1));
  x.run();
  await settle(); // failed, unclaimed
  const s = JSON.parse(x.store.getItem(x.key));
  s[0].s = x.now(); // another tab is sending it now
  x.store.setItem(x.key, JSON.stringify(s));
  const y = io([], x.store);
  new Queue(y).flush();
  await settle();
  assert.deepEqual(y.sent, []);
  const old = io([0]);
  const q = new Queue(old);
  q.push(ev(9, 1_000_000 - 73 * 3600e3));
  old.run();
  await settle();
  assert.equal(old.store.getItem(old.key), null);
});

test('pagehide: beacon takes the queue; what it refuses is stored', async () => {
  const x = io([]);
  const answers = [true, false];
  x.beacon = (events) => { x.sent.push(events); return answers.shift(); };
  const q = new Queue(x);
  for (let i = 0; i < MAX + 3; i++) q.push(ev(i));
  assert.equal(x.sent.length, 1); // MAX flushed by post
  await settle();
  q.beacon(); // the 3 left
  assert.deepEqual(x.sent[1].map((e) => e.event_id), ['e50', 'e51', 'e52']);
  q.push(ev(501));
  q.beacon(); // refused by sendBeacon
  assert.deepEqual(JSON.parse(x.store.getItem(x.key)).map((b) => b.id), ['e501']);
});

test('consent: pending holds events in memory, false drops everything, true sends', async () => {
  const x = io([0]);
  const q = new Queue(x);
  q.push(ev(1));
  x.run();
  await settle();
  assert.ok(x.store.getItem(x.key)); // a stored failed batch
  q.consent(false);
  assert.equal(x.store.getItem(x.key), null);
  q.push(ev(2));
  q.flush();
  q.beacon();
  assert.equal(x.sent.length, 1);
  q.consent(null);
  q.push(ev(3));
  x.run();
  assert.equal(x.sent.length, 1);
  assert.equal(x.store.getItem(x.key), null);
  q.consent(true);
  await settle();
  assert.deepEqual(x.sent[1], [ev(3)]);
});
