// Small helpers shared by the tag's modules (no DOM needed: unit-tested in node).

// An event id: 22 chars of [A-Za-z0-9_-] from crypto.getRandomValues (~131 bits).
var ABC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
export function newId(n) {
  var b = new Uint8Array(n || 22);
  crypto.getRandomValues(b);
  var s = '';
  for (var i = 0; i < b.length; i++) s += ABC[b[i] & 63];
  return s;
}

// The URL as sent: scheme, host, path; the query keeps only the parameters the
// outlet lists in `keep` (others may carry personal data: emails, tokens); no #fragment.
export function cleanUrl(href, keep) {
  if (!href) return '';
  var u;
  try { u = new URL(href); } catch (e) { return ''; }
  var q = [];
  if (keep && keep.length) {
    u.searchParams.forEach(function (v, k) {
      if (keep.indexOf(k) >= 0) q.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    });
  }
  return (u.origin + u.pathname + (q.length ? '?' + q.join('&') : '')).slice(0, 2048);
}
