/* pflow trace viewer: a lazily rendered tree + waterfall of the steps of a run, and
   the details of the selected step. Every text of the trace is set with textContent
   (never parsed as HTML). Only the rows in (or near) the viewport exist in the DOM. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("pflow-data").textContent);
  var S = DATA.steps, N = S.length, SPAN = DATA.span > 0 ? DATA.span : 1;
  var ROW = 22, OVERSCAN = 15;
  var kids = [], roots = [], depth = new Int32Array(N), expanded = new Uint8Array(N);
  var i;
  for (i = 0; i < N; i++) kids.push(null);
  for (i = 0; i < N; i++) {
    var p = S[i].p;
    if (p >= 0 && p < i) {
      (kids[p] || (kids[p] = [])).push(i);
      depth[i] = depth[p] + 1;
    } else {
      S[i].p = -1;
      roots.push(i);
    }
  }
  for (i = 0; i < roots.length; i++) expanded[roots[i]] = 1;
  if (roots.length === 1 && kids[roots[0]]) {  /* one run: its first level open too */
    kids[roots[0]].forEach(function (k) { if (N <= 2000) expanded[k] = 1; });
  }

  var list = document.getElementById("list"), spacer = document.getElementById("spacer");
  var detail = document.getElementById("detail"), count = document.getElementById("count");
  var search = document.getElementById("search"), statusSel = document.getElementById("status");
  var modelSel = document.getElementById("model");
  var visible = [], selected = -1, hay = null, included = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function json(v) {
    if (typeof v === "string") return v;
    try { return JSON.stringify(v, null, 2); } catch (err) { return String(v); }
  }
  function ms(x) {
    if (x < 1000) return Math.round(x) + " ms";
    if (x < 60000) return (x / 1000).toFixed(2) + " s";
    return Math.floor(x / 60000) + " min " + Math.round((x % 60000) / 1000) + " s";
  }
  var MARK = { ok: "\u2713", failed: "\u2717", skipped: "\u2013", not_taken: "\u00b7", running: "\u2026" };

  /* ---------------------------------------------------------------- filtering */
  function haystack(k) {
    var s = S[k], parts = [s.h, s.k, s.m || "", s.id, s.e || "", s.rep || ""];
    if (s.out !== undefined) parts.push(json(s.out));
    if (s.ev) s.ev.forEach(function (e) { parts.push(e && e.summary ? String(e.summary) : ""); });
    return parts.join("\n").toLowerCase();
  }
  function applyFilter() {
    var q = search.value.trim().toLowerCase(), st = statusSel.value, mo = modelSel.value;
    if (!q && !st && !mo) { included = null; return; }
    if (q && !hay) { hay = new Array(N); }
    included = new Uint8Array(N);
    for (var k = 0; k < N; k++) {
      var s = S[k];
      if (st && s.st !== st) continue;
      if (mo && s.m !== mo) continue;
      if (q) {
        if (hay[k] === undefined) hay[k] = haystack(k);
        if (hay[k].indexOf(q) < 0) continue;
      }
      included[k] = 2;
      for (var a = S[k].p; a >= 0 && !included[a]; a = S[a].p) included[a] = 1;
    }
  }
  function flatten() {
    visible = [];
    var stack = roots.slice().reverse();
    while (stack.length) {
      var k = stack.pop();
      if (included && !included[k]) continue;
      visible.push(k);
      var c = kids[k];
      if (c && (included ? true : expanded[k])) {
        for (var j = c.length - 1; j >= 0; j--) stack.push(c[j]);
      }
    }
    spacer.style.height = (visible.length * ROW) + "px";
    count.textContent = N + " steps \u00b7 " + visible.length + " shown";
  }

  /* ---------------------------------------------------------------- rows */
  function rowEl(pos) {
    var k = visible[pos], s = S[k];
    var r = el("div", "row" + (k === selected ? " sel" : ""));
    r.style.top = (pos * ROW) + "px";
    r.setAttribute("data-i", k);
    r.setAttribute("data-id", s.id);
    var name = el("div", "name");
    name.style.paddingLeft = (4 + depth[k] * 14) + "px";
    var tog = el("span", "tog", kids[k] ? (expanded[k] || included ? "\u25be" : "\u25b8") : "");
    if (kids[k]) tog.setAttribute("data-toggle", "1");
    name.appendChild(tog);
    name.appendChild(el("span", s.st, MARK[s.st] || "?"));
    name.appendChild(document.createTextNode(" "));
    name.appendChild(el("b", null, s.h));
    name.appendChild(el("span", "meta", s.k + (s.m ? " \u00b7 " + s.m : "") + (s.ch ? " \u00b7 cached" : "")));
    r.appendChild(name);
    var lane = el("div", "lane"), bar = el("div", "bar " + s.st + (s.ch ? " cached" : ""));
    var left = s.t / SPAN * 100, width = Math.max(s.d / SPAN * 100, 0.15);
    bar.style.left = Math.min(left, 99.8) + "%";
    bar.style.width = Math.min(width, 100 - Math.min(left, 99.8)) + "%";
    bar.title = "start " + ms(s.t) + ", " + ms(s.d);
    lane.appendChild(bar);
    var lat = el("span", "lat", ms(s.d));
    lat.style.left = Math.min(left + width, 88) + "%";
    lat.style.marginLeft = "4px";
    lane.appendChild(lat);
    r.appendChild(lane);
    return r;
  }
  var pending = false;
  function render() {
    pending = false;
    var first = Math.max(0, Math.floor(list.scrollTop / ROW) - OVERSCAN);
    var last = Math.min(visible.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + OVERSCAN);
    var frag = document.createDocumentFragment();
    for (var pos = first; pos < last; pos++) frag.appendChild(rowEl(pos));
    spacer.textContent = "";
    spacer.appendChild(frag);
  }
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(render); } }
  function refresh() { flatten(); render(); }

  function toggle(k) { expanded[k] = expanded[k] ? 0 : 1; refresh(); }
  function reveal(k) {
    for (var a = S[k].p; a >= 0; a = S[a].p) expanded[a] = 1;
    if (included && !included[k]) { search.value = ""; statusSel.value = ""; modelSel.value = ""; included = null; }
    flatten();
    var pos = visible.indexOf(k);
    if (pos >= 0 && (pos * ROW < list.scrollTop || (pos + 1) * ROW > list.scrollTop + list.clientHeight)) {
      list.scrollTop = Math.max(0, pos * ROW - list.clientHeight / 3);
    }
    render();
  }
  function select(k, scroll) {
    selected = k;
    if (scroll) reveal(k); else render();
    showDetail(k);
    if (history.replaceState) history.replaceState(null, "", "#" + encodeURIComponent(S[k].id));
  }

  list.addEventListener("scroll", schedule);
  window.addEventListener("resize", schedule);
  spacer.addEventListener("click", function (ev) {
    var r = ev.target.closest ? ev.target.closest(".row") : null;
    if (!r) return;
    var k = +r.getAttribute("data-i");
    if (ev.target.getAttribute && ev.target.getAttribute("data-toggle")) toggle(k);
    else select(k, false);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.target === search || selected < 0) return;
    var pos = visible.indexOf(selected);
    if (ev.key === "ArrowDown" && pos < visible.length - 1) { select(visible[pos + 1], true); ev.preventDefault(); }
    else if (ev.key === "ArrowUp" && pos > 0) { select(visible[pos - 1], true); ev.preventDefault(); }
    else if (ev.key === "ArrowRight" && kids[selected] && !expanded[selected]) toggle(selected);
    else if (ev.key === "ArrowLeft" && kids[selected] && expanded[selected]) toggle(selected);
  });
  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { applyFilter(); list.scrollTop = 0; refresh(); }, 150);
  });
  [statusSel, modelSel].forEach(function (sel) {
    sel.addEventListener("change", function () { applyFilter(); list.scrollTop = 0; refresh(); });
  });
  document.getElementById("expand").addEventListener("click", function () {
    for (var k = 0; k < N; k++) if (kids[k]) expanded[k] = 1; refresh();
  });
  document.getElementById("collapse").addEventListener("click", function () {
    for (var k = 0; k < N; k++) expanded[k] = 0; refresh();
  });

  /* ---------------------------------------------------------------- details */
  function section(title, node) {
    detail.appendChild(el("h3", null, title));
    if (node) detail.appendChild(node);
  }
  function facts(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(el("dt", null, p[0]));
      dl.appendChild(el("dd", null, p[1]));
    });
    return dl;
  }
  function stepLink(k) {
    var s = S[k], a = el("span", "linkish", s.h + " " + (MARK[s.st] || "") + " " + ms(s.d));
    a.addEventListener("click", function () { select(k, true); });
    return a;
  }
  function scoreBars(scores, best, lowerIsBetter) {
    var box = el("div"), names = Object.keys(scores), vals = names.map(function (n) { return +scores[n]; });
    var probs;
    if (lowerIsBetter) {
      var mx = Math.max.apply(null, vals.concat([1e-9]));
      probs = vals.map(function (v) { return 1 - v / mx * 0.9; });
    } else {
      var top = Math.max.apply(null, vals), tot = 0;
      probs = vals.map(function (v) { var e = Math.exp(v - top); tot += e; return e; });
      probs = probs.map(function (e) { return e / tot; });
    }
    names.forEach(function (n, j) {
      var row = el("div", "scorebar" + (String(n) === String(best) ? " best" : ""));
      var track = el("div", "track"), fill = el("div", "fill");
      fill.style.width = Math.max(2, probs[j] * 100) + "%";
      track.appendChild(fill);
      row.appendChild(el("span", null, n));
      row.appendChild(track);
      row.appendChild(el("span", "muted", vals[j].toFixed(3) + (lowerIsBetter ? " distance" : " log-prob")));
      box.appendChild(row);
    });
    return box;
  }
  function rawData(ev) {
    var rest = {};
    Object.keys(ev).forEach(function (k) { if (k !== "type" && k !== "summary") rest[k] = ev[k]; });
    var d = el("details");
    d.appendChild(el("summary", "muted", "data"));
    d.appendChild(el("pre", null, json(rest)));
    return d;
  }
  function hookContext(s, ev) {
    var text = s.rep || "", pos = +ev.position, ins = ev.output === undefined || ev.output === null ? "" : String(ev.output);
    var pre = el("pre");
    if (!(pos >= 0) || pos > text.length) { pre.textContent = "at character " + ev.position; return pre; }
    pre.appendChild(document.createTextNode((pos > 120 ? "\u2026" : "") + text.slice(Math.max(0, pos - 120), pos)));
    if (ins && text.substr(pos, ins.length) === ins) {
      pre.appendChild(el("mark", "ins", ins));
      pre.appendChild(document.createTextNode(text.slice(pos + ins.length, pos + ins.length + 80)));
    } else {
      pre.appendChild(el("mark", "at", "\u25bc"));
      pre.appendChild(document.createTextNode(text.slice(pos, pos + 80)));
    }
    return pre;
  }
  function eventNode(s, k, ev, subcalls) {
    var box = el("div", "ev");
    var type = ev && ev.type ? String(ev.type) : "event";
    box.appendChild(el("span", "ev-type", type + ": "));
    box.appendChild(el("span", null, ev && ev.summary !== undefined ? ev.summary : ""));
    if (type === "hook") {
      box.appendChild(facts([["hook", ev.hook], ["trigger", ev.trigger], ["at character", ev.position],
        ["action", ev.action], ["inserted", ev.output === undefined ? undefined : json(ev.output)],
        ["dropped", ev.dropped]]));
      box.appendChild(hookContext(s, ev));
    } else if (type === "decomp") {
      if (ev.line) box.appendChild(el("pre", null, ev.line));
      if (ev.questions && ev.questions.length) {
        var qs = el("div", "sub");
        var mine = subcalls[ev.handler] || [];
        ev.questions.forEach(function (q) {
          var line = el("div", null, "Q: " + q + " ");
          var c = mine.shift();
          if (c !== undefined) line.appendChild(stepLink(c));
          qs.appendChild(line);
        });
        if (ev.answer !== undefined) qs.appendChild(el("div", null, "A: " + json(ev.answer)));
        if (ev.error) qs.appendChild(el("div", "failed", "error: " + ev.error));
        box.appendChild(qs);
      }
    } else if (type === "route") {
      box.appendChild(facts([["expert", ev.expert], ["router", ev.router], ["router reply", ev.reply]]));
      if (ev.distances) box.appendChild(scoreBars(ev.distances, ev.expert, true));
      if (ev.rules) {
        var rl = el("div", "sub");
        Object.keys(ev.rules).forEach(function (n) { rl.appendChild(el("div", ev.rules[n] ? "ok" : "muted", (ev.rules[n] ? "\u2713 " : "\u2717 ") + n)); });
        box.appendChild(rl);
      }
    } else if (type === "hole") {
      box.appendChild(facts([["hole", ev.hole], ["value", json(ev.value)], ["decoder", ev.decoder],
        ["method", ev.method], ["attempts", ev.attempts]]));
      if (ev.scores && Object.keys(ev.scores).length) {
        var best = typeof ev.value === "string" ? ev.value : JSON.stringify(ev.value);
        box.appendChild(scoreBars(ev.scores, best, false));
      }
    }
    box.appendChild(rawData(ev || {}));
    return box;
  }
  function tokens(s) {
    if (s.tin === undefined) return s.uu ? "unknown (" + s.uu + " calls reported no usage)" : undefined;
    return s.tin + " in + " + s.tout + " out" + (s.uu ? " (+ " + s.uu + " calls with usage unknown)" : "");
  }
  function showDetail(k) {
    var s = S[k];
    detail.textContent = "";
    var h = el("h2");
    h.appendChild(el("span", s.st, (MARK[s.st] || "?") + " "));
    h.appendChild(document.createTextNode(s.h));
    detail.appendChild(h);
    var where = s.f ? s.f + (s.l ? ":" + s.l : "") : "";
    detail.appendChild(facts([
      ["step", s.id], ["kind", s.k], ["status", s.st], ["defined at", where],
      ["model", s.m], ["answered by", s.ab], ["started", "+" + ms(s.t)], ["latency", ms(s.d)],
      ["tokens", tokens(s)],
      ["cost", s.c !== undefined ? "$" + (+s.c).toFixed(6) : undefined],
      ["cache hit", s.ch === undefined ? undefined : (s.ch ? "yes" : "no")],
      ["model calls", s.n !== undefined ? s.n + (s.nh ? " (" + s.nh + " cached)" : "") : undefined],
      ["attempts", s.a], ["sub-steps", kids[k] ? kids[k].length : undefined]]));
    if (s.e) section("error", el("pre", "failed", s.e));
    if (s.in) section("inputs", el("pre", null, json(s.in)));
    if (s.msg && s.msg.length) {
      var box = el("div");
      s.msg.forEach(function (m) {
        box.appendChild(el("div", "msg-role", m && m.role ? m.role : "message"));
        box.appendChild(el("pre", null, json(m && m.content !== undefined ? m.content : m)));
      });
      section("messages sent (" + s.msg.length + ")", box);
    }
    if (s.a > 1 && s.msg) {  /* a re-asked step: each rejected reply and the error sent back */
      var tries = el("div"), n = 0;
      for (var j = 0; j + 1 < s.msg.length; j++) {
        var m1 = s.msg[j], m2 = s.msg[j + 1];
        if (m1 && m1.role === "assistant" && m2 && m2.role === "user") {
          n++;
          var t = el("div", "ev");
          t.appendChild(el("span", "ev-type", "attempt " + n + " rejected"));
          t.appendChild(el("pre", null, json(m1.content)));
          t.appendChild(el("div", "muted", "sent back:"));
          t.appendChild(el("pre", "failed", json(m2.content)));
          tries.appendChild(t);
        }
      }
      if (n) section("retries (" + n + " of " + s.a + " attempts rejected)", tries);
    }
    if (s.rep !== undefined) section("raw reply", el("pre", "reply", s.rep));
    if (s.out !== undefined) section(s.k === "row" ? "output" : "parsed value", el("pre", "value", json(s.out)));
    if (s.ev && s.ev.length) {
      var subcalls = {};
      (kids[k] || []).forEach(function (c) { (subcalls[S[c].h] || (subcalls[S[c].h] = [])).push(c); });
      var evs = el("div");
      s.ev.forEach(function (ev) { evs.appendChild(eventNode(s, k, ev, subcalls)); });
      section("events (" + s.ev.length + ")", evs);
    }
    if (kids[k]) {
      var sub = el("div");
      kids[k].slice(0, 200).forEach(function (c) { var d = el("div"); d.appendChild(stepLink(c)); sub.appendChild(d); });
      if (kids[k].length > 200) sub.appendChild(el("div", "muted", "\u2026 and " + (kids[k].length - 200) + " more"));
      section("calls", sub);
    }
    if (s.x) section("extra", el("pre", null, json(s.x)));
  }

  /* ---------------------------------------------------------------- start */
  var models = {};
  for (i = 0; i < N; i++) if (S[i].m) models[S[i].m] = 1;
  Object.keys(models).sort().forEach(function (m) { var o = el("option", null, m); o.value = m; modelSel.appendChild(o); });
  flatten();
  render();
  var want = (location.hash || "").slice(1);
  try { want = decodeURIComponent(want); } catch (err) { /* a malformed address: use it as it is */ }
  if (want) {
    for (i = 0; i < N; i++) if (S[i].id === want) { select(i, true); break; }
  }
  if (performance.mark) performance.mark("pflow-rows-rendered");
  document.body.setAttribute("data-ready", "1");
})();
