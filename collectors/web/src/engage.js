// Engaged-time accounting (pure: times are passed in, in ms).
// The reader is engaged while the page is visible and their last activity
// (scroll, key, pointer, touch) is at most `window` ms old. take(now) returns the
// engaged ms since the previous take: that is an engagement event's engaged_ms.
export function Engagement(now, windowMs) {
  this.w = windowMs || 5000;
  this.visible = true;
  this.last = now;      // accounted up to here
  this.until = -Infinity; // engaged until (last activity + window)
  this.ms = 0;          // engaged, not yet taken
}

Engagement.prototype.acc = function (now) {
  if (this.visible && now > this.last) this.ms += Math.max(0, Math.min(now, this.until) - this.last);
  if (now > this.last) this.last = now;
};

Engagement.prototype.activity = function (now) {
  this.acc(now);
  if (now + this.w > this.until) this.until = now + this.w;
};

Engagement.prototype.visibility = function (visible, now) {
  this.acc(now);
  if (!visible) this.until = -Infinity; // coming back needs new activity
  this.visible = visible;
};

Engagement.prototype.take = function (now) {
  this.acc(now);
  var ms = Math.round(this.ms);
  this.ms = 0;
  return ms;
};

// Scroll depth in percent (0-100) from the scroll position and sizes.
export function scrollDepth(scrollY, viewport, height) {
  if (!(height > 0)) return 0;
  return Math.max(0, Math.min(100, Math.round(((scrollY + viewport) / height) * 100)));
}
