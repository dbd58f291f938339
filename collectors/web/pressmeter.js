// Pressmeter web tag: the entry point the build bundles into dist/pressmeter.min.js.
// Pasted by an outlet as one element (docs/integration-news-site.md):
//   <script async src=".../pressmeter.min.js" data-site="news1.vn"
//           data-key="pk_news1_0123456789" data-endpoint="https://collect.example"></script>
// Events follow docs/standard.md §1; the ingest service adds received_at, ip_class, ua
// and, when the tag sends none (cookieless, the default), device_id.
import { Engagement, scrollDepth } from './src/engage.js';
import { trackMedia } from './src/media.js';
import { extractMeta } from './src/meta.js';
import { Queue } from './src/queue.js';
import { cleanUrl, newId } from './src/util.js';

(function (w, d) {
  var script = d.currentScript || d.querySelector('script[data-site][data-key]');
  if (!script || w.__pm) return;
  w.__pm = 1;
  function cfg(n) { return script.getAttribute('data-' + n) || ''; }
  var site = cfg('site');
  var key = cfg('key');
  var endpoint = cfg('endpoint').replace(/\/+$/, '');
  if (!/\/v1\/events$/.test(endpoint)) endpoint += '/v1/events';
  var keep = cfg('query') ? cfg('query').split(',') : [];
  var local = cfg('storage') === 'local';
  var store = null;
  try { store = w.localStorage; store.getItem('pm'); } catch (e) { store = null; }
  var now = Date.now;
  var device = null;
  var DID = 'pm_did';

  function setDevice(on) {
    try {
      if (!local || !store) return;
      if (!on) { store.removeItem(DID); device = null; return; }
      device = store.getItem(DID);
      if (!device) store.setItem(DID, device = 'w-' + newId());
    } catch (e) { /* storage denied: cookieless */ }
  }

  function body(events) { return JSON.stringify({ site_id: site, key: key, events: events }); }
  var q = new Queue({
    key: 'pm_q_' + site,
    store: store,
    now: now,
    timer: function (f, ms) { return setTimeout(f, ms); },
    // a string body is sent as text/plain: a CORS simple request, no preflight
    post: function (events) {
      return fetch(endpoint, { method: 'POST', body: body(events), keepalive: true, credentials: 'omit' })
        .then(function (r) { return r.status; }, function () { return 0; });
    },
    beacon: function (events) {
      try { return navigator.sendBeacon(endpoint, body(events)); } catch (e) { return false; }
    }
  });
  if (cfg('consent') === 'required') q.on = null;

  var pv = null;
  var depth = 0;
  var eng = new Engagement(now());

  function send(type, fields) {
    var e = { event_id: newId(), type: type, ts: now() };
    if (device) e.device_id = device;
    if (pv) {
      e.url = pv.url;
      if (pv.m.content_id) e.content_id = pv.m.content_id;
      if (pv.m.section) e.section = pv.m.section;
    }
    for (var k in fields) if (fields[k] != null && fields[k] !== '') e[k] = fields[k];
    q.push(e);
  }

  function measure() {
    var h = d.documentElement;
    var s = scrollDepth(w.scrollY || h.scrollTop || 0, w.innerHeight || h.clientHeight, h.scrollHeight);
    if (s > depth) depth = s;
  }

  // the engaged time not yet reported, as an engagement event of the current page view
  function engagement() {
    var ms = eng.take(now());
    if (pv && ms > 0) send('engagement', { engaged_ms: ms, scroll_depth: depth });
  }

  function pageView(ref) {
    var m = extractMeta(d);
    pv = { url: cleanUrl(location.href, keep), m: m };
    depth = 0;
    measure();
    send('page_view', { referrer: ref, title: (m.title || d.title || '').slice(0, 512), published: m.published });
  }

  // single-page apps: a new URL is a new page view (metadata read once the app rendered it)
  var routeTimer = 0;
  function route() {
    var url = cleanUrl(location.href, keep);
    if (pv && url === pv.url && !routeTimer) return;
    var ref = pv && pv.url;
    engagement();
    clearTimeout(routeTimer);
    routeTimer = setTimeout(function () { routeTimer = 0; pageView(ref); }, 100);
  }
  var push = history.pushState;
  history.pushState = function () {
    var r = push.apply(this, arguments);
    route();
    return r;
  };
  w.addEventListener('popstate', route);

  function active() { eng.activity(now()); }
  ['keydown', 'pointerdown', 'pointermove', 'touchstart', 'wheel'].forEach(function (t) {
    w.addEventListener(t, active, { passive: true, capture: true });
  });
  w.addEventListener('scroll', function () { active(); measure(); }, { passive: true, capture: true });

  setInterval(function () { if (d.visibilityState !== 'hidden') engagement(); }, 5000);

  var flushMedia = trackMedia(d, function (action, play, el, ms) {
    send('media', {
      media_id: mediaId(el), action: action, played_ms: ms, play_id: play.id,
      media_kind: el.tagName === 'AUDIO' ? 'audio' : 'video',
      stream: el.duration === Infinity ? 'live' : 'vod'
    });
  });
  function mediaId(el) { return el.__pmId || (el.__pmId = el.getAttribute('data-media-id') || el.id || src(el)); }
  function src(el) {
    var s = el.currentSrc || el.src || '';
    if (!s || /^(blob|data|mediastream):/.test(s)) {
      var x = el.querySelector('source[src]');
      s = x ? x.src : (pv && pv.m.content_id) || 'media';
    }
    return s.split(/[?#]/)[0].slice(-128);
  }

  // leaving or hiding the page: report, then hand the queue to sendBeacon
  function leave() {
    engagement();
    flushMedia();
    q.beacon();
  }
  d.addEventListener('visibilitychange', function () {
    var visible = d.visibilityState !== 'hidden';
    if (!visible) leave();
    eng.visibility(visible, now());
  });
  w.addEventListener('pagehide', leave);
  w.addEventListener('pageshow', function (e) { if (e.persisted) pageView(pv && pv.url); });

  // the outlet's commands: pressmeter('consent', true|false), pressmeter('page_view'),
  // pressmeter('flush'); calls made before the tag loaded wait in pressmeter.q
  function api(cmd, arg) {
    if (cmd === 'consent') {
      q.consent(!!arg);
      setDevice(!!arg);
    } else if (cmd === 'page_view') {
      engagement();
      pageView(pv && pv.url);
    } else if (cmd === 'flush') q.flush();
  }
  var early = (w.pressmeter && w.pressmeter.q) || [];
  w.pressmeter = api;
  setDevice(q.on === true);
  for (var i = 0; i < early.length; i++) api.apply(null, early[i]);
  pageView(d.referrer ? cleanUrl(d.referrer) : '');
})(window, document);
