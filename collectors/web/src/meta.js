// Article metadata from the page: JSON-LD (schema.org Article family) first, then
// <meta> tags. `doc` only needs querySelectorAll(selector) returning elements with
// getAttribute(name) and textContent, so the unit tests pass a DOM-like object.

var TYPES = /Article|BlogPosting|Report|VideoObject|AudioObject|WebPage/;

function attr(doc, sel, name) {
  var els = doc.querySelectorAll(sel);
  for (var i = 0; i < els.length; i++) {
    var v = els[i].getAttribute(name || 'content');
    if (v) return v.trim();
  }
  return '';
}

function ldNodes(doc) {
  var out = [];
  var els = doc.querySelectorAll('script[type="application/ld+json"]');
  for (var i = 0; i < els.length; i++) {
    try { walk(JSON.parse(els[i].textContent), out); } catch (e) { /* bad JSON-LD: skipped */ }
  }
  return out;
}

function walk(node, out) {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) { for (var i = 0; i < node.length; i++) walk(node[i], out); return; }
  var t = node['@type'];
  if (TYPES.test(Array.isArray(t) ? t.join(' ') : String(t || ''))) out.push(node);
  if (node['@graph']) walk(node['@graph'], out);
}

function str(v) {
  if (Array.isArray(v)) v = v[0];
  if (v && typeof v === 'object') v = v['@id'] || v.url || v.name || '';
  return v == null ? '' : String(v).trim();
}

// Returns {content_id, section, title, published} with only the fields found.
// Explicit pm: meta tags win, then JSON-LD, then Open Graph / article: tags.
export function extractMeta(doc) {
  var ld = ldNodes(doc);
  // an Article beats a WebPage when a page has both
  ld.sort(function (a, b) { return /WebPage/.test(str(a['@type'])) - /WebPage/.test(str(b['@type'])); });
  var a = ld[0] || {};
  var m = {
    content_id: attr(doc, 'meta[name="pm:content_id"]') || str(a.identifier) ||
      attr(doc, 'meta[property="article:id"]') || str(a['@id']) || str(a.mainEntityOfPage) ||
      attr(doc, 'link[rel="canonical"]', 'href'),
    section: attr(doc, 'meta[name="pm:section"]') || str(a.articleSection) ||
      attr(doc, 'meta[property="article:section"]'),
    title: attr(doc, 'meta[name="pm:title"]') || str(a.headline) || str(a.name) ||
      attr(doc, 'meta[property="og:title"]'),
    published: attr(doc, 'meta[name="pm:published"]') || str(a.datePublished) ||
      attr(doc, 'meta[property="article:published_time"]')
  };
  var out = {};
  for (var k in m) if (m[k]) out[k] = m[k].slice(0, k === 'title' ? 512 : 256);
  return out;
}
