// Batching and delivery, with unsent batches kept in localStorage and retried.
// io = {post(events) -> Promise<http status, 0 = network error>, beacon(events) -> bool,
//       store: a localStorage-like object or null, key, now() -> ms, timer(fn, ms)}.
// A batch is written to the store before it is sent and removed once the ingest
// service answered it (2xx, or a 4xx that retrying cannot fix); so a batch lost to
// a network error, a closed tab or a crash is sent again on the next page load.
// Event ids stay the same, and the pipeline drops the duplicates this can make.
export var MAX = 50;          // events per request
var DELAY = 1000;             // ms an event waits for others to share its request
var KEEP_MS = 72 * 3600e3;    // older events are refused by ingest: not kept
var CLAIM_MS = 30000;         // a batch being sent by a tab is left alone this long

export function Queue(io) {
  this.io = io;
  this.q = [];
  this.t = 0;
  this.back = 5000;
  this.on = true; // consent
}

Queue.prototype.push = function (ev) {
  if (this.on === false || this.q.length > 500) return; // refused: nothing is kept
  this.q.push(ev);
  if (this.q.length >= MAX) this.flush();
  else this.later(DELAY);
};

Queue.prototype.later = function (ms) {
  var self = this;
  if (!this.t) this.t = this.io.timer(function () { self.t = 0; self.flush(); }, ms);
};

Queue.prototype.load = function () {
  try { return JSON.parse(this.io.store.getItem(this.io.key)) || []; } catch (e) { return []; }
};

Queue.prototype.save = function (list) {
  var s = this.io.store;
  if (!s) return;
  try {
    var old = this.io.now() - KEEP_MS;
    list = list.filter(function (b) { return b.e.length && b.e[0].ts > old; }).slice(-40);
    if (list.length) s.setItem(this.io.key, JSON.stringify(list));
    else s.removeItem(this.io.key);
  } catch (e) { /* storage full or denied: delivery is best effort */ }
};

Queue.prototype.edit = function (fn) { this.save(fn(this.load())); };

// Sends what is queued, and what the store holds that no tab is sending.
Queue.prototype.flush = function () {
  if (this.on !== true) return;
  var self = this, io = this.io, now = io.now(), batches = [];
  while (this.q.length) batches.push({ id: this.q[0].event_id, e: this.q.splice(0, MAX) });
  this.edit(function (list) {
    list.forEach(function (b) { if (!(b.s > now - CLAIM_MS)) batches.push(b); });
    batches.forEach(function (b) { b.s = now; });
    return list.concat(batches.filter(function (b) { return list.indexOf(b) < 0; }));
  });
  batches.forEach(function (b) {
    io.post(b.e).then(function (status) {
      var done = (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 429);
      if (done || !io.store) return self.drop(b);
      self.edit(function (list) { list.forEach(function (x) { if (x.id === b.id) x.s = 0; }); return list; });
      self.later(self.back);
      self.back = Math.min(self.back * 2, 60000);
    });
  });
};

Queue.prototype.drop = function (b) {
  this.back = 5000;
  this.edit(function (list) { return list.filter(function (x) { return x.id !== b.id; }); });
};

// pagehide: hand what is queued to sendBeacon; what it refuses stays stored.
Queue.prototype.beacon = function () {
  if (this.on !== true) return;
  while (this.q.length) {
    var e = this.q.splice(0, MAX);
    if (!this.io.beacon(e)) this.edit(function (list) { return list.concat([{ id: e[0].event_id, e: e }]); });
  }
};

// consent(true): send; consent(false): drop everything queued or stored, send nothing;
// consent(null): pending, events wait in memory (not in storage) for a decision.
Queue.prototype.consent = function (on) {
  this.on = on;
  if (on === false) {
    this.q = [];
    try { this.io.store && this.io.store.removeItem(this.io.key); } catch (e) { /* denied */ }
  }
  if (on === true) this.flush();
};
