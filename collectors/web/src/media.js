// Media accounting. Play is pure (positions in seconds as the media element gives
// them, unit-tested); trackMedia wires it to <video>/<audio> elements, which is
// also how hls.js, video.js, Shaka etc. are measured: they drive a media element.
import { newId } from './util.js';

// One playback: played ms since the previous media event of this play.
// Played time is the advance of currentTime while playing; a jump of more than
// `maxStep` s between two readings is a seek, not playing.
export function Play(pos) {
  this.id = newId(16);
  this.pos = pos;
  this.ms = 0;
  this.beat = 10000;
}

Play.prototype.at = function (pos, maxStep) {
  var d = pos - this.pos;
  if (d > 0 && d <= (maxStep || 2)) this.ms += d * 1000;
  this.pos = pos;
};

// Seeked: restart counting from the new position, without counting the jump.
Play.prototype.seek = function (pos) { this.pos = pos; };

Play.prototype.take = function () {
  var ms = Math.round(this.ms);
  this.ms = 0;
  return ms;
};

// A heartbeat is due after every `beat` ms played.
Play.prototype.due = function () { return this.ms >= this.beat; };

// Calls emit(action, play, el, played_ms) for each media event of `el`.
export function trackEl(el, emit) {
  if (el.__pm) return;
  el.__pm = 1;
  var play = null;
  function ev(action, end) {
    if (!play) return;
    play.at(el.currentTime);
    emit(action, play, el, play.take());
    if (end) play = null;
  }
  function on(t, f) { el.addEventListener(t, f); }
  on('playing', function () {
    if (!play) {
      play = new Play(el.currentTime);
      emit('start', play, el, 0);
    } else play.at(el.currentTime);
  });
  on('timeupdate', function () {
    if (!play || el.paused || el.seeking) return;
    play.at(el.currentTime);
    if (play.due()) emit('heartbeat', play, el, play.take());
  });
  on('seeking', function () { if (play) play.at(el.currentTime); });
  on('seeked', function () { if (play) play.seek(el.currentTime); });
  on('pause', function () { if (!el.ended) ev('pause'); });
  on('ended', function () { ev('end', 1); });
  // a new source (video.js playlist, hls.js re-attach): the play so far is over
  on('emptied', function () { ev('pause', 1); });
  el.__pmFlush = function () { if (play && !el.paused) ev('pause'); };
  // found while already playing (a player that started before the tag loaded)
  if (!el.paused && !el.ended && el.readyState > 2) {
    play = new Play(el.currentTime);
    emit('start', play, el, 0);
  }
}

// Tracks the page's media elements, also those added later (the observer's
// callback runs as a microtask: before the new element can start playing).
export function trackMedia(doc, emit) {
  var seen = [];
  function add(el) {
    if (!el.__pm) seen.push(el);
    trackEl(el, emit);
  }
  function scan(node) {
    if (/^(VIDEO|AUDIO)$/.test(node.tagName)) add(node);
    else if (node.querySelectorAll) {
      var els = node.querySelectorAll('video,audio');
      for (var i = 0; i < els.length; i++) add(els[i]);
    }
  }
  scan(doc);
  if (typeof MutationObserver !== 'undefined') {
    new MutationObserver(function (muts) {
      for (var i = 0; i < muts.length; i++) {
        for (var j = 0, a = muts[i].addedNodes; j < a.length; j++) scan(a[j]);
      }
    }).observe(doc.documentElement, { childList: true, subtree: true });
  }
  // on pagehide: report what playing media played since their last event
  return function () {
    for (var i = 0; i < seen.length; i++) seen[i].__pmFlush();
  };
}
