"use strict";
// MCP Analytics dashboard.
//
// A hash-routed single page that reads the collector's JSON API. Everything the
// API returns is attacker-controlled, so every node is built with createElement,
// textContent and property/attribute setters (class and data-* only); links are
// "#/..." hashes whose data parts all go through encodeURIComponent.
(function () {
  // ------------------------------------------------------------------ constants
  const RANGES = ["1h", "24h", "7d", "30d", "all"];
  const RANGE_LABELS = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    all: "All time",
  };
  const DEFAULT_RANGE = "24h";
  const CELL_MAX = 120; // characters shown in a table cell
  const TITLE_MAX = 2000; // characters kept in a title tooltip
  const OPTION_MAX = 60; // characters shown in a filter option
  const PRE_MAX = 200000; // characters of JSON shown before "show all"
  const LIVE_POLL_MS = 2000;
  const LIVE_MAX = 200;
  const BAD_OUTCOMES = new Set(["tool_error", "error", "http_error", "no_response", "cancelled"]);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MINUTE = 60000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;

  // ---------------------------------------------------------------- DOM helpers

  // h("div", {class, data: {...}, title, text}, ...children): children are
  // nodes or strings (strings become text nodes, never markup).
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") node.className = v;
        else if (k === "data") setData(node, v);
        else if (k === "text") node.textContent = String(v);
        else if (k === "title") node.title = String(v);
        else if (k === "href") node.href = safeHash(v);
        else node[k] = v; // plain DOM properties: type, hidden, value, colSpan...
      }
    }
    appendAll(node, children);
    return node;
  }

  // data-* attributes; values are stringified, null becomes "".
  function setData(node, data) {
    for (const [k, v] of Object.entries(data)) {
      node.setAttribute("data-" + k, v === null || v === undefined ? "" : String(v));
    }
  }

  function appendAll(node, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
  }

  // Links only ever point at our own hash routes.
  function safeHash(v) {
    const s = String(v);
    if (!s.startsWith("#/")) throw new Error("refusing non-hash link");
    return s;
  }

  // SVG element with numeric/static attributes (never raw data, except data-*).
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (k === "data") setData(node, v);
        else node.setAttribute(k, String(v));
      }
    }
    appendAll(node, children);
    return node;
  }

  function clip(value, max) {
    const s = String(value);
    return s.length > max ? s.slice(0, max - 1) + "\u2026" : s;
  }

  // A text span clipped to `max` characters, the (clipped) full value as tooltip.
  function clipped(value, max = CELL_MAX, cls) {
    const full = String(value);
    const span = h("span", { class: cls }, clip(full, max));
    if (full.length > max) span.title = clip(full, TITLE_MAX);
    return span;
  }

  // ------------------------------------------------------------------ formatting
  const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  function fmtInt(n) {
    return isNum(n) ? intFmt.format(n) : "\u2014";
  }

  function fmtPct(r, digits = 1) {
    return isNum(r) ? (r * 100).toFixed(digits) + "%" : "\u2014";
  }

  function fmtMs(ms) {
    if (!isNum(ms)) return "\u2014";
    if (ms < 10) return ms.toFixed(2) + " ms";
    if (ms < 100) return ms.toFixed(1) + " ms";
    if (ms < 1000) return ms.toFixed(0) + " ms";
    if (ms < MINUTE) return (ms / 1000).toFixed(2) + " s";
    return fmtDuration(ms);
  }

  // Human duration: 450 ms, 12.3 s, 4m 05s, 2h 03m, 3d 4h.
  function fmtDuration(ms) {
    if (!isNum(ms)) return "\u2014";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < MINUTE) return (ms / 1000).toFixed(1) + " s";
    const s = Math.floor(ms / 1000);
    if (ms < HOUR) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (ms < DAY) return Math.floor(s / 3600) + "h " + pad(Math.floor(s / 60) % 60) + "m";
    return Math.floor(s / 86400) + "d " + (Math.floor(s / 3600) % 24) + "h";
  }

  function fmtClock(ms, withMs) {
    if (!isNum(ms)) return "\u2014";
    const d = new Date(ms);
    const base = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    return withMs ? base + "." + pad(d.getMilliseconds(), 3) : base;
  }

  // Compact axis label for milliseconds: 0, 250ms, 1.5s.
  function tickMs(v) {
    if (v === 0) return "0";
    if (v < 1000) return +v.toPrecision(3) + "ms";
    return +(v / 1000).toPrecision(3) + "s";
  }

  function fmtDate(ms) {
    const d = new Date(ms);
    return MONTHS[d.getMonth()] + " " + d.getDate();
  }

  // Local date and time: "Mar 4, 14:05:22" (with the year when not this year).
  function fmtDateTime(ms) {
    if (!isNum(ms)) return "\u2014";
    const d = new Date(ms);
    const year = d.getFullYear() !== new Date().getFullYear() ? " " + d.getFullYear() : "";
    return fmtDate(ms) + year + ", " + fmtClock(ms);
  }

  // Full ISO-like local timestamp for tooltips.
  function fmtFull(ms) {
    if (!isNum(ms)) return "";
    const d = new Date(ms);
    return (
      d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + fmtClock(ms, true)
    );
  }

  function shortId(id) {
    const s = String(id == null ? "" : id);
    return s.length > 18 ? s.slice(0, 17) + "\u2026" : s;
  }

  function outcomeClass(outcome, isError) {
    if (outcome === "success") return "ok";
    if (BAD_OUTCOMES.has(outcome) || isError === true) return "bad";
    return "neutral";
  }

  function badge(outcome, isError) {
    const text = outcome == null || outcome === "" ? "unknown" : outcome;
    return clipped(text, 40, "badge " + outcomeClass(outcome, isError));
  }

  // ---------------------------------------------------------------------- router

  // Query string from an object, every key and value through encodeURIComponent.
  function queryString(q) {
    const parts = [];
    for (const [k, v] of Object.entries(q || {})) {
      if (v === null || v === undefined || v === "") continue;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(v)));
    }
    return parts.join("&");
  }

  function hashFor(view, id, q) {
    let s = "#/" + encodeURIComponent(view);
    if (id !== null && id !== undefined) s += "/" + encodeURIComponent(id);
    const qs = queryString(q);
    return qs ? s + "?" + qs : s;
  }

  function decode(s, plusIsSpace) {
    try {
      return decodeURIComponent(plusIsSpace ? s.replace(/\+/g, " ") : s);
    } catch (_) {
      return s;
    }
  }

  // "#/view/id?k=v" -> state with validated filters.
  function parseHash() {
    const raw = location.hash.replace(/^#/, "");
    const qi = raw.indexOf("?");
    const path = qi >= 0 ? raw.slice(0, qi) : raw;
    const query = qi >= 0 ? raw.slice(qi + 1) : "";
    const segs = path.split("/").filter((s) => s !== "").map((s) => decode(s, false));
    const params = {};
    for (const pair of query.split("&")) {
      if (!pair) continue;
      const eq = pair.indexOf("=");
      const k = decode(eq >= 0 ? pair.slice(0, eq) : pair, true);
      params[k] = decode(eq >= 0 ? pair.slice(eq + 1) : "", true);
    }
    const ms = (v) => (typeof v === "string" && /^\d{1,16}$/.test(v) ? v : null);
    return {
      view: segs[0] || "overview",
      id: segs.length > 1 ? segs.slice(1).join("/") : null,
      range: RANGES.includes(params.range) ? params.range : DEFAULT_RANGE,
      from: ms(params.from),
      to: ms(params.to),
      tool: params.tool || null,
      client: params.client || null,
      user: params.user || null,
      event: params.event || null, // session view: open this event's details
    };
  }

  const isCustom = (st) => st.from !== null || st.to !== null;

  // The filters of a state as hash query parameters (defaults left out).
  function filterQuery(st, over) {
    const f = Object.assign({}, st, over || {});
    const q = {};
    if (f.range && f.range !== DEFAULT_RANGE) q.range = f.range;
    if (f.from) q.from = f.from;
    if (f.to) q.to = f.to;
    if (f.tool) q.tool = f.tool;
    if (f.client) q.client = f.client;
    if (f.user) q.user = f.user;
    return q;
  }

  // The filters of a state as API query parameters, minus `omit`.
  function apiParams(st, omit) {
    const q = { range: st.range, from: st.from, to: st.to, tool: st.tool, client: st.client, user: st.user };
    for (const k of omit || []) delete q[k];
    return q;
  }

  const viewHash = (st, view, id, over) => hashFor(view, id, filterQuery(st, over));

  // ------------------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, params) {
    const qs = queryString(params);
    let res;
    try {
      res = await fetch(path + (qs ? "?" + qs : ""), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
    } catch (_) {
      throw new ApiError(0, "Network error: the collector did not answer");
    }
    if (!res.ok) {
      let msg = "";
      try {
        const body = await res.json();
        if (body && typeof body.error === "string") msg = body.error;
      } catch (_) {
        /* not JSON */
      }
      if (res.status === 401) msg = "This dashboard needs a password";
      throw new ApiError(res.status, msg || res.statusText || "Request failed");
    }
    try {
      return await res.json();
    } catch (_) {
      throw new ApiError(res.status, "The API answered with invalid JSON");
    }
  }

  function errorBox(err) {
    const status = err && err.status ? err.status : null;
    const title =
      status === 401
        ? "This dashboard needs a password"
        : status === 404
          ? "Not found"
          : status
            ? "The API answered with an error"
            : "Something went wrong";
    return h(
      "div",
      { class: "error-box", role: "alert" },
      h("div", { class: "error-title" }, title),
      h(
        "div",
        { class: "error-detail" },
        status ? h("span", { class: "error-status" }, "HTTP " + status) : null,
        clipped(err && err.message ? err.message : String(err), 300),
      ),
      status === 401
        ? h("p", { class: "muted" }, "Reload the page and enter the dashboard password when the browser asks for it.")
        : null,
    );
  }

  // --------------------------------------------------------------------- charts
  // Tiny hand-written SVG charts: multi-series line chart and stacked bars.
  // Chart geometry: normal charts are 640x220 user units; wide ones 1160x260
  // so that text keeps roughly the same size on screen.
  const dimsFor = (wide) => (wide ? { w: 1160, h: 260 } : { w: 640, h: 220 });
  const PAD = { l: 52, r: 14, t: 12, b: 26 };

  // Round a step up to 1, 2, 2.5 or 5 times a power of ten.
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / exp;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * exp;
  }

  function yTicks(max, integer) {
    let step = niceStep(max / 4);
    if (integer) step = Math.max(1, Math.ceil(step));
    const n = Math.max(1, Math.ceil(max / step - 1e-9));
    const ticks = [];
    for (let i = 0; i <= n; i++) ticks.push(i * step);
    return ticks;
  }

  // Time ticks aligned to local wall-clock steps.
  const TIME_STEPS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
    6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];

  function xTicks(t0, t1) {
    const span = t1 - t0;
    const step = TIME_STEPS.find((s) => span / s <= 6) || TIME_STEPS[TIME_STEPS.length - 1];
    const tz = new Date(t0).getTimezoneOffset() * MINUTE;
    const ticks = [];
    for (let t = Math.ceil((t0 - tz) / step) * step + tz; t <= t1 && ticks.length < 12; t += step) ticks.push(t);
    const label = (t) => {
      const d = new Date(t);
      if (step >= DAY || (d.getHours() === 0 && d.getMinutes() === 0 && span > DAY)) return fmtDate(t);
      return pad(d.getHours()) + ":" + pad(d.getMinutes());
    };
    return ticks.map((t) => ({ t, label: label(t) }));
  }

  function bucketOf(points, given) {
    if (isNum(given) && given > 0) return given;
    let best = Infinity;
    for (let i = 1; i < points.length; i++) best = Math.min(best, points[i].t - points[i - 1].t);
    return Number.isFinite(best) && best > 0 ? best : HOUR;
  }

  function chartFrame(name, label, dm) {
    return svg("svg", {
      class: "chart",
      viewBox: "0 0 " + dm.w + " " + dm.h,
      role: "img",
      "aria-label": label,
      preserveAspectRatio: "xMidYMid meet",
      data: { chart: name },
    });
  }

  function emptyChart(name, label, dm) {
    const root = chartFrame(name, label, dm);
    root.classList.add("is-empty");
    root.append(
      svg("text", { class: "empty-text", x: dm.w / 2, y: dm.h / 2, "text-anchor": "middle", "dominant-baseline": "middle" },
        "No data in this range"),
    );
    return root;
  }

  // Axes and grid shared by both chart types; returns scales.
  function axes(root, dm, t0, t1, yMax, ticks, yFmt) {
    const CW = dm.w;
    const CH = dm.h;
    const pw = CW - PAD.l - PAD.r;
    const ph = CH - PAD.t - PAD.b;
    const sx = (t) => PAD.l + ((t - t0) / (t1 - t0 || 1)) * pw;
    const sy = (v) => PAD.t + ph - (v / (yMax || 1)) * ph;
    const grid = svg("g", { class: "grid" });
    for (const v of ticks) {
      const y = sy(v).toFixed(1);
      grid.append(svg("line", { x1: PAD.l, x2: CW - PAD.r, y1: y, y2: y }));
      grid.append(svg("text", { class: "tick", x: PAD.l - 8, y, "text-anchor": "end", "dominant-baseline": "middle" }, yFmt(v)));
    }
    for (const tk of xTicks(t0, t1)) {
      const x = sx(tk.t);
      if (x < PAD.l + 12 || x > CW - PAD.r - 12) continue;
      grid.append(svg("line", { class: "xtick", x1: x.toFixed(1), x2: x.toFixed(1), y1: PAD.t + ph, y2: PAD.t + ph + 4 }));
      grid.append(svg("text", { class: "tick", x: x.toFixed(1), y: CH - 6, "text-anchor": "middle" }, tk.label));
    }
    grid.append(svg("line", { class: "baseline", x1: PAD.l, x2: CW - PAD.r, y1: PAD.t + ph, y2: PAD.t + ph }));
    root.append(grid);
    return { sx, sy, ph };
  }

  // Legend below a chart: coloured swatch + clipped label.
  function legend(items) {
    return h(
      "div",
      { class: "legend" },
      items.map((it) =>
        h("span", { class: "legend-item", data: { series: it.key } }, h("span", { class: "swatch " + it.color }), clipped(it.label, 48)),
      ),
    );
  }

  // Transparent per-bucket hover targets with a native tooltip.
  function hoverTargets(root, dm, points, bucket, sx, lines) {
    const g = svg("g", { class: "hovers" });
    for (const p of points) {
      const x0 = sx(p.t);
      const x1 = sx(p.t + bucket);
      const title = svg("title");
      title.textContent = [fmtFull(p.t).slice(0, 16)].concat(lines(p)).join("\n");
      g.append(svg("rect", { class: "hover", x: x0.toFixed(1), y: PAD.t, width: Math.max(1, x1 - x0).toFixed(1), height: dm.h - PAD.t - PAD.b }, title));
    }
    root.append(g);
  }

  // Multi-series line chart. spec: {name, label, points:[{t,...}], bucket,
  // series:[{key,label,color,area?}], yFmt, integer, zeroIsEmpty}
  function lineChart(spec) {
    const pts = (spec.points || []).filter((p) => isNum(p.t)).slice().sort((a, b) => a.t - b.t);
    const values = [];
    for (const p of pts) for (const s of spec.series) if (isNum(p[s.key])) values.push(p[s.key]);
    const empty = values.length === 0 || (spec.zeroIsEmpty && values.every((v) => v === 0));
    const leg = legend(spec.series);
    const dm = dimsFor(spec.wide);
    if (empty) return { svg: emptyChart(spec.name, spec.label, dm), legend: leg };

    const bucket = bucketOf(pts, spec.bucket);
    const t0 = pts[0].t;
    const t1 = pts[pts.length - 1].t + bucket;
    const ticks = yTicks(Math.max(...values, 0), spec.integer);
    const root = chartFrame(spec.name, spec.label, dm);
    const { sx, sy, ph } = axes(root, dm, t0, t1, ticks[ticks.length - 1], ticks, spec.yFmt);
    const base = (PAD.t + ph).toFixed(1);

    for (const s of spec.series) {
      // Split into runs of non-null values: nulls are gaps.
      const runs = [];
      let run = null;
      for (const p of pts) {
        const v = p[s.key];
        if (!isNum(v)) {
          run = null;
          continue;
        }
        if (!run) runs.push((run = []));
        run.push([sx(p.t + bucket / 2).toFixed(1), sy(v).toFixed(1)]);
      }
      if (s.area) {
        let a = "";
        for (const r of runs) {
          if (r.length < 2) continue;
          a += "M" + r[0][0] + " " + base + r.map((xy) => "L" + xy[0] + " " + xy[1]).join("") + "L" + r[r.length - 1][0] + " " + base + "Z";
        }
        if (a) root.append(svg("path", { class: "area " + s.color, d: a }));
      }
      // A lone point (nulls on both sides) also gets a visible dot.
      const d = runs.map((r) => "M" + r.map((xy) => xy.join(" ")).join("L") + (r.length === 1 ? "h0" : "")).join("");
      root.append(svg("path", { class: "series " + s.color, d, data: { series: s.key } }));
      for (const r of runs) if (r.length === 1) root.append(svg("circle", { class: "dot " + s.color, cx: r[0][0], cy: r[0][1], r: 2.5 }));
    }
    hoverTargets(root, dm, pts, bucket, sx, (p) => spec.series.map((s) => s.label + ": " + (isNum(p[s.key]) ? spec.yFmt(p[s.key]) : "\u2014")));
    return { svg: root, legend: leg };
  }

  // Stacked bar chart. spec: {name, label, points:[{t, values:{key:n}}], keys:[{key,label,color}],
  // bucket, normalize}
  function stackedBars(spec) {
    const pts = (spec.points || []).filter((p) => isNum(p.t)).slice().sort((a, b) => a.t - b.t);
    const totals = pts.map((p) => spec.keys.reduce((sum, k) => sum + (isNum(p.values[k.key]) ? p.values[k.key] : 0), 0));
    const leg = legend(spec.keys);
    const dm = dimsFor(spec.wide);
    if (pts.length === 0 || totals.every((t) => t === 0)) return { svg: emptyChart(spec.name, spec.label, dm), legend: leg };

    const bucket = bucketOf(pts, spec.bucket);
    const t0 = pts[0].t;
    const t1 = pts[pts.length - 1].t + bucket;
    const ticks = spec.normalize ? [0, 0.25, 0.5, 0.75, 1] : yTicks(Math.max(...totals), true);
    const yFmt = spec.normalize ? (v) => Math.round(v * 100) + "%" : fmtInt;
    const root = chartFrame(spec.name, spec.label, dm);
    const { sx, sy } = axes(root, dm, t0, t1, ticks[ticks.length - 1], ticks, yFmt);

    const groups = spec.keys.map((k) => svg("g", { class: "series " + k.color, data: { series: k.key } }));
    pts.forEach((p, i) => {
      const total = totals[i];
      if (total <= 0) return;
      const x0 = sx(p.t);
      const w = sx(p.t + bucket) - x0;
      const gap = Math.min(3, w * 0.15);
      let acc = 0;
      spec.keys.forEach((k, ki) => {
        const raw = isNum(p.values[k.key]) ? p.values[k.key] : 0;
        if (raw <= 0) return;
        const v = spec.normalize ? raw / total : raw;
        const yTop = sy(acc + v);
        const yBot = sy(acc);
        acc += v;
        const title = svg("title");
        title.textContent = clip(k.label, 200) + " \u2014 " + fmtFull(p.t).slice(0, 16) + ": " + fmtInt(raw) + (spec.normalize ? " (" + fmtPct(v) + ")" : "");
        groups[ki].append(svg("rect", {
          x: (x0 + gap / 2).toFixed(1),
          y: yTop.toFixed(1),
          width: Math.max(0.5, w - gap).toFixed(1),
          height: Math.max(0, yBot - yTop).toFixed(1),
        }, title));
      });
    });
    for (const g of groups) root.append(g);
    return { svg: root, legend: leg };
  }

  // A card holding a chart with its title and legend.
  function chartCard(title, chart, extraClass) {
    return h("section", { class: "card chart-card" + (extraClass ? " " + extraClass : "") },
      h("div", { class: "card-head" }, h("h3", null, title), chart.legend),
      chart.svg);
  }

  // ---------------------------------------------------------------- components

  // Stat card: <div class="stat" data-stat=field data-value=raw>.
  function stat(field, label, raw, shown, sub) {
    return h("div", { class: "stat", data: { stat: field, value: raw } },
      h("div", { class: "stat-label" }, label),
      h("div", { class: "stat-value" }, shown instanceof Node ? shown : clipped(shown, 80)),
      sub ? h("div", { class: "stat-sub" }, sub) : null);
  }

  function statGrid(stats, cls) {
    return h("div", { class: "stats" + (cls ? " " + cls : "") }, stats);
  }

  function rawValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  // Sortable data table. cols: [{col, label, num, get(row)=raw, show(row)=Node|string, sortBy?}]
  function dataTable(name, cols, rows, keyOf, emptyText) {
    const table = h("table", { class: "table", data: { table: name } });
    const tbody = h("tbody");
    let sortCol = null;
    let sortDir = 1;

    const cellFor = (c, r) => {
      const raw = c.get(r);
      const shown = c.show ? c.show(r) : raw === null || raw === undefined ? "\u2014" : raw;
      return h("td", { class: c.num ? "num" : c.cls || null, data: { col: c.col, value: rawValue(raw) } },
        shown instanceof Node ? shown : clipped(shown));
    };

    const fill = () => {
      let list = rows;
      if (sortCol) {
        const key = sortCol.sortBy || sortCol.get;
        list = rows.slice().sort((a, b) => {
          const x = key(a);
          const y = key(b);
          if (x === y) return 0;
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          return (x < y ? -1 : 1) * sortDir;
        });
      }
      tbody.replaceChildren();
      if (list.length === 0) {
        tbody.append(h("tr", { class: "empty-row" }, h("td", { colSpan: cols.length }, emptyText || "No data in this range")));
      }
      for (const r of list) tbody.append(h("tr", { data: { row: keyOf(r) } }, cols.map((c) => cellFor(c, r))));
    };

    const headRow = h("tr");
    for (const c of cols) {
      const btn = h("button", { type: "button", class: "th-sort" }, c.label);
      const th = h("th", { class: c.num ? "num" : null, scope: "col" }, c.sortable === false ? c.label : btn);
      btn.addEventListener("click", () => {
        sortDir = sortCol === c ? -sortDir : c.num ? -1 : 1;
        sortCol = c;
        for (const other of headRow.children) other.classList.remove("sorted-asc", "sorted-desc");
        th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
        fill();
      });
      headRow.append(th);
    }
    table.append(h("thead", null, headRow), tbody);
    fill();
    return h("div", { class: "table-wrap" }, table);
  }

  function link(hash, text, max, cls) {
    const a = h("a", { href: hash, class: cls });
    const full = String(text);
    a.textContent = clip(full, max || CELL_MAX);
    if (full.length > (max || CELL_MAX)) a.title = clip(full, TITLE_MAX);
    return a;
  }

  // Link to a session timeline (optionally opening one event), short id shown, full id as tooltip.
  function sessionLink(st, id, eventId, cls) {
    const a = link(viewHash(st, "sessions", id, eventId ? { event: eventId } : null), shortId(id), 40, "mono" + (cls ? " " + cls : ""));
    a.title = clip(id, TITLE_MAX);
    return a;
  }

  function chips(counts) {
    const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
    if (entries.length === 0) return h("span", { class: "muted" }, "\u2014");
    return h("span", { class: "chips" },
      entries.map(([k, n]) => h("span", { class: "chip " + outcomeClass(k) }, clipped(k, 32, "chip-key"), h("span", { class: "chip-n" }, fmtInt(n)))));
  }

  function pageHead(title, sub, crumb) {
    return h("div", { class: "page-head" },
      crumb || null,
      h("h1", null, title instanceof Node ? title : clipped(title, 120)),
      sub ? h("p", { class: "page-sub" }, sub) : null);
  }

  function card(title, body, cls) {
    return h("section", { class: "card" + (cls ? " " + cls : "") },
      title ? h("div", { class: "card-head" }, h("h3", null, title)) : null, body);
  }

  function rangeText(st) {
    if (isCustom(st)) {
      const a = st.from ? fmtDateTime(Number(st.from)) : "the beginning";
      const b = st.to ? fmtDateTime(Number(st.to)) : "now";
      return a + " \u2192 " + b;
    }
    return RANGE_LABELS[st.range];
  }

  function userLabel(id, name) {
    if (name) return name;
    if (id) return id;
    return "anonymous";
  }

  // ----------------------------------------------------------------------- views

  async function viewOverview(st) {
    const d = await api("/api/overview", apiParams(st));
    const t = d.totals || {};
    const pts = d.series || [];
    return {
      ready: "overview",
      title: "Overview",
      node: h("div", null,
        pageHead("Overview", rangeText(st)),
        statGrid([
          stat("events", "Events", t.events, fmtInt(t.events)),
          stat("tool_calls", "Tool calls", t.tool_calls, fmtInt(t.tool_calls)),
          stat("users", "Users", t.users, fmtInt(t.users)),
          stat("sessions", "Sessions", t.sessions, fmtInt(t.sessions)),
          stat("error_rate", "Error rate", t.error_rate, fmtPct(t.error_rate), isNum(t.errors) ? fmtInt(t.errors) + " errors" : null),
          stat("p50_ms", "Latency p50", t.p50_ms, fmtMs(t.p50_ms)),
          stat("p95_ms", "Latency p95", t.p95_ms, fmtMs(t.p95_ms)),
        ]),
        h("div", { class: "grid-2" },
          chartCard("Events & tool calls", lineChart({
            name: "events", label: "Events and tool calls over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "events", label: "Events", color: "c0", area: true }, { key: "tool_calls", label: "Tool calls", color: "c1" }],
            yFmt: fmtInt, integer: true, zeroIsEmpty: true,
          })),
          chartCard("Error rate", lineChart({
            name: "error_rate", label: "Error rate over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "error_rate", label: "Error rate", color: "c3", area: true }],
            yFmt: (v) => fmtPct(v, v > 0 && v < 0.1 ? 1 : 0),
          })),
          chartCard("Latency", lineChart({
            name: "latency", label: "p50 and p95 latency over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "p50_ms", label: "p50", color: "c4" }, { key: "p95_ms", label: "p95", color: "c5" }],
            yFmt: tickMs,
          })),
          chartCard("Users & sessions", lineChart({
            name: "audience", label: "Users and sessions over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "users", label: "Users", color: "c0" }, { key: "sessions", label: "Sessions", color: "c2" }],
            yFmt: fmtInt, integer: true, zeroIsEmpty: true,
          })),
        )),
    };
  }

  function toolCols(st) {
    return [
      { col: "tool", label: "Tool", get: (r) => r.tool, show: (r) => link(viewHash(st, "tools", r.tool), r.tool, CELL_MAX, "strong") },
      { col: "calls", label: "Calls", num: true, get: (r) => r.calls, show: (r) => fmtInt(r.calls) },
      { col: "errors", label: "Errors", num: true, get: (r) => r.errors, show: (r) => fmtInt(r.errors) },
      { col: "error_rate", label: "Error %", num: true, get: (r) => r.error_rate, show: (r) => fmtPct(r.error_rate) },
      { col: "p50_ms", label: "p50", num: true, get: (r) => r.p50_ms, show: (r) => fmtMs(r.p50_ms) },
      { col: "p95_ms", label: "p95", num: true, get: (r) => r.p95_ms, show: (r) => fmtMs(r.p95_ms) },
      { col: "p99_ms", label: "p99", num: true, get: (r) => r.p99_ms, show: (r) => fmtMs(r.p99_ms) },
      { col: "outcomes", label: "Outcomes", sortable: false, get: (r) => r.outcomes, show: (r) => chips(r.outcomes) },
      { col: "clients", label: "Top clients", sortable: false, get: (r) => r.clients, show: (r) => topClients(r.clients) },
    ];
  }

  // The two busiest clients of a tool, one per line, then "+N more".
  function topClients(list) {
    const rows = Array.isArray(list) ? list : [];
    if (rows.length === 0) return h("span", { class: "muted" }, "\u2014");
    return h("span", { class: "client-list" },
      rows.slice(0, 2).map((c) => h("span", { class: "client-line" }, clipped(c.client, 40), " ", h("span", { class: "muted" }, fmtInt(c.calls)))),
      rows.length > 2 ? h("span", { class: "client-line muted small" }, "+" + (rows.length - 2) + " more") : null);
  }

  async function viewTools(st) {
    const d = await api("/api/tools", apiParams(st));
    const rows = d.tools || [];
    return {
      ready: "tools",
      title: "Tools",
      node: h("div", null,
        pageHead("Tools", rangeText(st) + " \u00b7 " + fmtInt(rows.length) + " tools"),
        card(null, dataTable("tools", toolCols(st), rows, (r) => r.tool), "card-flush"),
        insights(st, d.insights || {})),
    };
  }

  // A date-time cell with the full timestamp as tooltip.
  function when(ms) {
    return h("span", { title: fmtFull(ms) }, fmtDateTime(ms));
  }

  // The body of an insight card: a one-line explanation, then its table.
  function insightBody(note, table) {
    return h("div", null, h("p", { class: "card-note" }, note), table);
  }

  // Beyond call counts: tools advertised but never called, calls of tools that were not
  // advertised, and what agents looked for and did not find.
  function insights(st, d) {
    const list = (v) => (Array.isArray(v) ? v : []);
    const never = list(d.advertised_never_called);
    const unknown = list(d.unknown_tools);
    const asks = list(d.asked_for);
    const advertised = isNum(d.advertised_tools) ? d.advertised_tools : 0;
    const neverEmpty = advertised > 0
      ? "Every advertised tool was called"
      : "No tools/list answer in this range, so nothing to compare with";
    return h("div", { class: "insights", data: { insights: "" } },
      h("div", { class: "grid-2" },
        card("Advertised, never called", insightBody(
          "Tools the server listed in this range that no agent called in it.",
          dataTable("never-called", [
            { col: "tool", label: "Tool", get: (r) => r.tool, show: (r) => clipped(r.tool, CELL_MAX, "strong") },
            { col: "last_advertised", label: "Last advertised", num: true, get: (r) => r.last_advertised, show: (r) => when(r.last_advertised) },
          ], never, (r) => r.tool, neverEmpty)), "card-flush"),
        card("Unknown tools called", insightBody(
          "Calls of tools the server had not advertised, or did not know.",
          dataTable("unknown-tools", [
            { col: "tool", label: "Tool", get: (r) => r.tool, show: (r) => link(viewHash(st, "tools", r.tool), r.tool, CELL_MAX, "strong") },
            { col: "calls", label: "Calls", num: true, get: (r) => r.calls, show: (r) => fmtInt(r.calls) },
            { col: "last_seen", label: "Last seen", num: true, get: (r) => r.last_seen, show: (r) => when(r.last_seen) },
          ], unknown, (r) => r.tool, "Every tool called was advertised")), "card-flush")),
      card("What agents asked for", insightBody(
        "What agents were looking for when no tool fit, newest first.",
        dataTable("asked-for", [
          { col: "ts", label: "Time", cls: "nowrap", get: (r) => r.ts, show: (r) => when(r.ts) },
          { col: "user_intent", label: "Looking for", cls: "intent", get: (r) => r.user_intent, show: (r) => clipped(r.user_intent == null ? "\u2014" : r.user_intent, 300) },
          { col: "client", label: "Client", cls: "nowrap", get: (r) => r.client, show: (r) => clipped(r.client == null ? "\u2014" : r.client, 32) },
          {
            col: "session_id", label: "Session", cls: "nowrap", get: (r) => r.session_id,
            show: (r) => r.session_id == null ? "\u2014" : sessionLink(st, r.session_id, r.id),
          },
        ], asks, (r) => r.id, "No agent asked for a tool it could not find")), "card-flush"));
  }

  function eventCols(st) {
    return [
      { col: "ts", label: "Time", cls: "nowrap", get: (r) => r.ts, show: (r) => h("span", { class: "mono", title: fmtFull(r.ts) }, fmtDateTime(r.ts)) },
      { col: "user_id", label: "User", cls: "nowrap", get: (r) => r.user_id, show: (r) => clipped(userLabel(r.user_id, r.user_name), 28) },
      { col: "client", label: "Client", cls: "nowrap", get: (r) => r.client, show: (r) => clipped(r.client == null ? "\u2014" : r.client, 32) },
      { col: "outcome", label: "Outcome", get: (r) => r.outcome, show: (r) => badge(r.outcome, r.is_error) },
      { col: "duration_ms", label: "Duration", num: true, get: (r) => r.duration_ms, show: (r) => fmtMs(r.duration_ms) },
      {
        col: "session_id", label: "Session", cls: "nowrap", get: (r) => r.session_id,
        show: (r) => r.session_id == null ? "\u2014" : sessionLink(st, r.session_id, r.id),
      },
    ];
  }

  async function viewTool(st) {
    const name = st.id;
    const d = await api("/api/tools/" + encodeURIComponent(name), apiParams(st, ["tool"]));
    const t = d.tool || {};
    const pts = d.series || [];
    const crumb = h("div", { class: "crumb" }, link(viewHash(st, "tools"), "Tools"), " / ");
    return {
      ready: "tool",
      title: clip(name, 60) + " \u00b7 Tools",
      node: h("div", null,
        pageHead(h("span", { class: "mono" }, clip(name, 120)), rangeText(st), crumb),
        statGrid([
          stat("calls", "Calls", t.calls, fmtInt(t.calls)),
          stat("errors", "Errors", t.errors, fmtInt(t.errors)),
          stat("error_rate", "Error rate", t.error_rate, fmtPct(t.error_rate)),
          stat("p50_ms", "Latency p50", t.p50_ms, fmtMs(t.p50_ms)),
          stat("p95_ms", "Latency p95", t.p95_ms, fmtMs(t.p95_ms)),
          stat("p99_ms", "Latency p99", t.p99_ms, fmtMs(t.p99_ms)),
        ]),
        h("div", { class: "grid-2" },
          chartCard("Calls & errors", lineChart({
            name: "tool_calls", label: "Calls and errors over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "calls", label: "Calls", color: "c0", area: true }, { key: "errors", label: "Errors", color: "c3" }],
            yFmt: fmtInt, integer: true, zeroIsEmpty: true,
          })),
          chartCard("Latency", lineChart({
            name: "tool_latency", label: "p50 and p95 latency over time", points: pts, bucket: d.bucket_ms,
            series: [{ key: "p50_ms", label: "p50", color: "c4" }, { key: "p95_ms", label: "p95", color: "c5" }],
            yFmt: tickMs,
          }))),
        h("div", { class: "grid-2" },
          card("Top users", dataTable("tool-users", [
            {
              col: "user_id", label: "User", cls: "nowrap", get: (r) => r.user_id,
              show: (r) => r.user_id == null ? h("span", { class: "muted" }, "anonymous") : link(viewHash(st, "sessions", null, { user: r.user_id }), r.user_id, 40),
            },
            { col: "user_name", label: "Name", get: (r) => r.user_name, show: (r) => clipped(r.user_name == null ? "\u2014" : r.user_name, 40) },
            { col: "calls", label: "Calls", num: true, get: (r) => r.calls, show: (r) => fmtInt(r.calls) },
          ], d.users || [], (r) => r.user_id), "card-flush"),
          card("Outcomes", outcomeTable(t.outcomes, t.calls), "card-flush")),
        card("Recent calls", dataTable("recent", eventCols(st), d.recent || [], (r) => r.id), "card-flush")),
    };
  }

  // Outcome breakdown of one tool: outcome, calls, share of calls.
  function outcomeTable(outcomes, total) {
    const rows = Object.entries(outcomes || {}).map(([outcome, calls]) => ({ outcome, calls })).sort((a, b) => b.calls - a.calls);
    const sum = isNum(total) && total > 0 ? total : rows.reduce((n, r) => n + (isNum(r.calls) ? r.calls : 0), 0);
    return dataTable("tool-outcomes", [
      { col: "outcome", label: "Outcome", get: (r) => r.outcome, show: (r) => badge(r.outcome) },
      { col: "calls", label: "Calls", num: true, get: (r) => r.calls, show: (r) => fmtInt(r.calls) },
      {
        col: "share", label: "Share", num: true, get: (r) => (sum > 0 && isNum(r.calls) ? r.calls / sum : null),
        show: (r) => shareBar(sum > 0 && isNum(r.calls) ? r.calls / sum : null, outcomeClass(r.outcome) === "ok" ? "c1" : outcomeClass(r.outcome) === "bad" ? "c3" : "c7"),
      },
    ], rows, (r) => r.outcome);
  }

  async function viewClients(st) {
    const d = await api("/api/clients", apiParams(st));
    const rows = d.clients || [];
    // Series keys: clients in table order, then any others found in the series.
    const keys = rows.map((r) => r.client);
    for (const p of d.series || []) for (const k of Object.keys(p.clients || {})) if (!keys.includes(k)) keys.push(k);
    const keyed = keys.map((k, i) => ({ key: k, label: k, color: "c" + (i % 8) }));
    const colorOf = new Map(keyed.map((k) => [k.key, k.color]));
    const chart = stackedBars({
      name: "client_share", label: "Share of events per client over time", keys: keyed, normalize: true, wide: true, bucket: d.bucket_ms,
      points: (d.series || []).map((p) => ({ t: p.t, values: p.clients || {} })),
    });
    const cols = [
      {
        col: "client", label: "Client", get: (r) => r.client,
        show: (r) => h("span", { class: "with-swatch" }, h("span", { class: "swatch " + (colorOf.get(r.client) || "c7") }),
          link(viewHash(st, "overview", null, { client: r.client }), r.client, CELL_MAX, "strong")),
      },
      { col: "client_name", label: "client_name", get: (r) => r.client_name, show: (r) => clipped(r.client_name == null ? "\u2014" : r.client_name, CELL_MAX, "mono") },
      { col: "events", label: "Events", num: true, get: (r) => r.events, show: (r) => fmtInt(r.events) },
      { col: "users", label: "Users", num: true, get: (r) => r.users, show: (r) => fmtInt(r.users) },
      { col: "sessions", label: "Sessions", num: true, get: (r) => r.sessions, show: (r) => fmtInt(r.sessions) },
      { col: "share", label: "Share", num: true, get: (r) => r.share, show: (r) => shareBar(r.share, colorOf.get(r.client)) },
    ];
    return {
      ready: "clients",
      title: "Clients",
      node: h("div", null,
        pageHead("Clients", rangeText(st) + " \u00b7 " + fmtInt(rows.length) + " clients"),
        chartCard("Share over time", chart, "wide"),
        card(null, dataTable("clients", cols, rows, (r) => r.client), "card-flush")),
    };
  }

  // "42.0%" with a thin SVG meter beside it (no style attributes needed).
  function shareBar(share, color) {
    const w = isNum(share) ? Math.max(0, Math.min(1, share)) * 100 : 0;
    const meter = svg("svg", { class: "meter", viewBox: "0 0 100 6", preserveAspectRatio: "none", "aria-hidden": "true" },
      svg("rect", { class: "meter-track", x: 0, y: 0, width: 100, height: 6, rx: 3 }),
      svg("rect", { class: "meter-fill " + (color || "c0"), x: 0, y: 0, width: w.toFixed(1), height: 6, rx: 3 }));
    return h("span", { class: "meter-cell" }, meter, h("span", null, fmtPct(share)));
  }

  async function viewUsers(st) {
    const d = await api("/api/users", apiParams(st));
    const rows = d.users || [];
    const cols = [
      {
        col: "user_id", label: "User id", cls: "nowrap", get: (r) => r.user_id,
        show: (r) => link(viewHash(st, "sessions", null, { user: r.user_id }), r.user_id, 40, "strong"),
      },
      { col: "user_name", label: "Name", get: (r) => r.user_name, show: (r) => clipped(r.user_name == null ? "\u2014" : r.user_name) },
      { col: "events", label: "Events", num: true, get: (r) => r.events, show: (r) => fmtInt(r.events) },
      { col: "tool_calls", label: "Tool calls", num: true, get: (r) => r.tool_calls, show: (r) => fmtInt(r.tool_calls) },
      { col: "errors", label: "Errors", num: true, get: (r) => r.errors, show: (r) => fmtInt(r.errors) },
      { col: "sessions", label: "Sessions", num: true, get: (r) => r.sessions, show: (r) => fmtInt(r.sessions) },
      { col: "first_seen", label: "First seen", num: true, get: (r) => r.first_seen, show: (r) => h("span", { title: fmtFull(r.first_seen) }, fmtDateTime(r.first_seen)) },
      { col: "last_seen", label: "Last seen", num: true, get: (r) => r.last_seen, show: (r) => h("span", { title: fmtFull(r.last_seen) }, fmtDateTime(r.last_seen)) },
    ];
    const anon = d.anonymous_events;
    return {
      ready: "users",
      title: "Users",
      node: h("div", null,
        pageHead("Users", rangeText(st) + " \u00b7 " + fmtInt(rows.length) + " users"),
        card(null, dataTable("users", cols, rows, (r) => r.user_id), "card-flush"),
        isNum(anon)
          ? h("p", { class: "note", data: { stat: "anonymous_events", value: anon } },
            fmtInt(anon) + (anon === 1 ? " event" : " events") + " in this range had no user id (anonymous).")
          : null),
    };
  }

  async function viewSessions(st) {
    const d = await api("/api/sessions", apiParams(st));
    const rows = d.sessions || [];
    const cols = [
      {
        col: "session_id", label: "Session", cls: "nowrap", get: (r) => r.session_id,
        show: (r) => sessionLink(st, r.session_id, null, "strong"),
      },
      { col: "user_id", label: "User", get: (r) => r.user_id, show: (r) => userCell(r) },
      { col: "client", label: "Client", cls: "nowrap", get: (r) => r.client, show: (r) => clipped(r.client == null ? "\u2014" : r.client, 32) },
      { col: "started", label: "Started", num: true, get: (r) => r.started, show: (r) => h("span", { title: fmtFull(r.started) }, fmtDateTime(r.started)) },
      {
        col: "duration_ms", label: "Duration", num: true, get: (r) => isNum(r.started) && isNum(r.ended) ? r.ended - r.started : null,
        show: (r) => isNum(r.started) && isNum(r.ended) ? fmtDuration(r.ended - r.started) : "\u2014",
      },
      { col: "events", label: "Events", num: true, get: (r) => r.events, show: (r) => fmtInt(r.events) },
      { col: "tool_calls", label: "Tool calls", num: true, get: (r) => r.tool_calls, show: (r) => fmtInt(r.tool_calls) },
      { col: "errors", label: "Errors", num: true, get: (r) => r.errors, show: (r) => errorCount(r.errors) },
      { col: "grouped_by", label: "Grouped by", get: (r) => r.grouped_by, show: (r) => clipped(r.grouped_by == null ? "\u2014" : r.grouped_by, 20, "tag") },
    ];
    let sub = rangeText(st) + " \u00b7 " + fmtInt(rows.length) + (rows.length === 1 ? " session" : " sessions");
    if (st.user) sub += " \u00b7 user " + clip(st.user, 60);
    return {
      ready: "sessions",
      title: "Sessions",
      node: h("div", null,
        pageHead("Sessions", sub),
        card(null, dataTable("sessions", cols, rows, (r) => r.session_id), "card-flush")),
    };
  }

  function userCell(r) {
    if (r.user_id == null) return h("span", { class: "muted" }, "anonymous");
    const wrap = h("span", { class: "user-cell" }, clipped(userLabel(r.user_id, r.user_name), 40));
    if (r.user_name && r.user_name !== r.user_id) wrap.append(clipped(r.user_id, 40, "muted small"));
    return wrap;
  }

  function errorCount(n) {
    return h("span", { class: isNum(n) && n > 0 ? "err-count" : null }, fmtInt(n));
  }

  async function viewSession(st) {
    const id = st.id;
    const d = await api("/api/sessions/" + encodeURIComponent(id));
    const s = d.session || {};
    const events = (d.events || []).slice();
    const start = isNum(s.started) ? s.started : events.length ? events[0].ts : 0;
    const duration = isNum(s.started) && isNum(s.ended) ? s.ended - s.started : null;
    const crumb = h("div", { class: "crumb" }, link(viewHash(st, "sessions"), "Sessions"), " / ");

    const list = h("ol", { class: "timeline", data: { timeline: id } });
    let autoOpen = null;
    for (const ev of events) {
      const item = timelineItem(ev, start);
      if (st.event && ev.id === st.event) autoOpen = item;
      list.append(item.li);
    }
    if (events.length === 0) list.append(h("li", { class: "timeline-empty" }, "This session has no events."));
    // "?event=<id>" opens that event's details before the view is ready.
    if (autoOpen) await autoOpen.open();

    return {
      ready: "session",
      title: "Session " + shortId(id),
      node: h("div", null,
        pageHead(h("span", { class: "mono" }, clip(id, 120)), null, crumb),
        statGrid([
          stat("user_id", "User", s.user_id, userLabel(s.user_id, s.user_name), s.user_name && s.user_id ? clipped(s.user_id, 40) : null),
          stat("client", "Client", s.client, s.client == null ? "\u2014" : s.client),
          stat("started", "Started", s.started, fmtDateTime(s.started)),
          stat("duration_ms", "Duration", duration, fmtDuration(duration)),
          stat("events", "Events", s.events, fmtInt(s.events)),
          stat("tool_calls", "Tool calls", s.tool_calls, fmtInt(s.tool_calls)),
          stat("errors", "Errors", s.errors, fmtInt(s.errors)),
          stat("grouped_by", "Grouped by", s.grouped_by, s.grouped_by == null ? "\u2014" : s.grouped_by),
        ], "stats-summary"),
        card("Timeline", list, "timeline-card")),
    };
  }

  // One event of a session timeline, with an on-demand details panel.
  function timelineItem(ev, start) {
    const li = h("li", { class: "tl-item " + outcomeClass(ev.outcome, ev.is_error), data: { "event-id": ev.id, seq: ev.seq } });
    const toggle = h("button", { type: "button", class: "btn-small tl-toggle" }, "Details");
    toggle.setAttribute("aria-expanded", "false");
    const panel = h("div", { class: "tl-details", hidden: true });
    const offset = isNum(ev.ts) && isNum(start) ? ev.ts - start : null;
    li.append(
      h("div", { class: "tl-row" },
        h("span", { class: "tl-time mono", title: fmtFull(ev.ts), data: { col: "ts", value: ev.ts } }, fmtClock(ev.ts, true)),
        h("span", { class: "tl-offset mono", data: { col: "offset_ms", value: offset } }, offset === null ? "" : "+" + fmtDuration(offset)),
        h("span", { class: "tl-method mono", data: { col: "method", value: ev.method } }, clip(ev.method == null ? "\u2014" : ev.method, 60)),
        h("span", { class: "tl-tool", data: { col: "tool", value: ev.tool } }, ev.tool == null ? "" : clipped(ev.tool, CELL_MAX, "strong")),
        h("span", { class: "tl-outcome", data: { col: "outcome", value: ev.outcome } }, badge(ev.outcome, ev.is_error)),
        h("span", { class: "tl-duration num", data: { col: "duration_ms", value: ev.duration_ms } }, fmtMs(ev.duration_ms)),
        toggle),
      panel);

    let loaded = false;
    const open = async () => {
      panel.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
      toggle.textContent = "Hide";
      li.classList.add("open");
      if (loaded) return;
      loaded = true;
      panel.replaceChildren(h("p", { class: "muted" }, "Loading\u2026"));
      try {
        const d = await api("/api/events/" + encodeURIComponent(ev.id));
        panel.replaceChildren(eventDetails(d.event || {}));
      } catch (err) {
        loaded = false;
        panel.replaceChildren(errorBox(err));
      }
    };
    toggle.addEventListener("click", () => {
      if (panel.hidden) open();
      else {
        panel.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        toggle.textContent = "Details";
        li.classList.remove("open");
      }
    });
    return { li, open };
  }

  function eventDetails(event) {
    const parts = [];
    for (const key of ["arguments", "result", "error"]) {
      if (Object.prototype.hasOwnProperty.call(event, key) && event[key] !== undefined) parts.push(jsonBlock(key, event[key]));
    }
    if (parts.length === 0) parts.push(h("p", { class: "muted" }, "No arguments, result or error were recorded for this event."));
    return h("div", { class: "json-blocks", data: { details: "" } }, parts);
  }

  // Pretty JSON in a <pre>, via textContent; very large values are cut with a "show all" button.
  function jsonBlock(label, value) {
    let text;
    try {
      text = JSON.stringify(value, null, 2);
    } catch (_) {
      text = String(value);
    }
    if (text === undefined) text = String(value);
    const pre = h("pre", { class: "json", data: { json: label } });
    const head = h("div", { class: "json-head" }, h("span", { class: "json-label" }, label));
    if (text.length > PRE_MAX) {
      pre.textContent = text.slice(0, PRE_MAX) + "\n\u2026";
      const more = h("button", { type: "button", class: "btn-small" }, "Show all (" + fmtBytes(text.length) + ")");
      more.addEventListener("click", () => {
        pre.textContent = text;
        more.remove();
      });
      head.append(more);
    } else {
      pre.textContent = text;
    }
    return h("div", { class: "json-block" }, head, pre);
  }

  function fmtBytes(n) {
    if (n < 1024) return n + " chars";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " K chars";
    return (n / 1024 / 1024).toFixed(1) + " M chars";
  }

  // Live tail: the last 50 events, then poll for newer ones every 2 s.
  async function viewLive(st, isCurrent) {
    const params = apiParams(st, ["range", "from", "to"]);
    const d = await api("/api/events", Object.assign({ limit: 50 }, params));
    const list = h("ol", { class: "live-list", data: { live: "" } });
    const seen = new Set();
    let cursor = isNum(d.cursor) ? d.cursor : 0;
    const status = h("span", { class: "live-status" });
    const setStatus = (ok, text) => {
      status.className = "live-status " + (ok ? "ok" : "bad");
      status.textContent = text;
    };

    // New events arrive in ascending seq; newest goes on top.
    const add = (events) => {
      for (const ev of events || []) {
        if (seen.has(ev.id)) continue;
        seen.add(ev.id);
        list.prepend(liveItem(ev, st));
        if (isNum(ev.seq) && ev.seq > cursor) cursor = ev.seq;
      }
      while (list.children.length > LIVE_MAX) {
        const last = list.lastElementChild;
        seen.delete(last.getAttribute("data-event-id"));
        last.remove();
      }
      empty.hidden = list.children.length > 0;
    };
    const empty = h("p", { class: "placeholder" }, "Waiting for events\u2026");
    add(d.events);
    setStatus(true, "Listening \u00b7 updated " + fmtClock(Date.now()));

    const tick = async () => {
      liveTimer = null;
      if (!isCurrent()) return;
      if (!document.hidden) {
        try {
          const r = await api("/api/events", Object.assign({ after: cursor, limit: 200 }, params));
          if (!isCurrent()) return;
          add(r.events);
          if (isNum(r.cursor) && r.cursor > cursor) cursor = r.cursor;
          setStatus(true, "Listening \u00b7 updated " + fmtClock(Date.now()));
        } catch (err) {
          if (!isCurrent()) return;
          setStatus(false, (err.status ? "HTTP " + err.status + ": " : "") + clip(err.message, 200) + " \u00b7 retrying");
        }
      }
      if (isCurrent()) liveTimer = setTimeout(tick, LIVE_POLL_MS);
    };

    return {
      ready: "live",
      title: "Live",
      node: h("div", null,
        pageHead(h("span", { class: "live-title" }, h("span", { class: "live-dot big" }), "Live"), null),
        h("div", { class: "live-bar" }, status, h("span", { class: "muted" }, "Newest first \u00b7 last " + LIVE_MAX + " events kept")),
        card(null, h("div", null, list, empty), "card-flush")),
      after: () => {
        liveTimer = setTimeout(tick, LIVE_POLL_MS);
      },
    };
  }

  function liveItem(ev, st) {
    return h("li", { class: "live-item", data: { "event-id": ev.id, seq: ev.seq } },
      h("span", { class: "mono muted", title: fmtFull(ev.ts), data: { col: "ts", value: ev.ts } }, fmtClock(ev.ts, true)),
      h("span", { class: "tl-outcome", data: { col: "outcome", value: ev.outcome } }, badge(ev.outcome, ev.is_error)),
      h("span", { class: "mono", data: { col: "method", value: ev.method } }, clip(ev.method == null ? "\u2014" : ev.method, 40)),
      h("span", { class: "live-tool", data: { col: "tool", value: ev.tool } }, ev.tool == null ? "" : clipped(ev.tool, 80, "strong")),
      h("span", { class: "live-who muted", data: { col: "client", value: ev.client } },
        clipped((ev.client == null ? "\u2014" : ev.client) + " \u00b7 " + userLabel(ev.user_id, ev.user_name), 80)),
      h("span", { class: "num", data: { col: "duration_ms", value: ev.duration_ms } }, fmtMs(ev.duration_ms)),
      ev.session_id == null ? h("span") : sessionLink(st, ev.session_id, ev.id, "small"));
  }

  const ROUTES = {
    overview: (st) => viewOverview(st),
    tools: (st) => (st.id !== null ? viewTool(st) : viewTools(st)),
    clients: (st) => viewClients(st),
    users: (st) => viewUsers(st),
    sessions: (st) => (st.id !== null ? viewSession(st) : viewSessions(st)),
    live: (st, isCurrent) => viewLive(st, isCurrent),
  };

  // ----------------------------------------------------------- chrome: nav & filters
  const $ = (id) => document.getElementById(id);
  const facetCache = new Map();
  let current = parseHash();

  function updateChrome(st) {
    for (const a of $("nav").querySelectorAll("a[data-view]")) {
      const v = a.getAttribute("data-view");
      a.href = viewHash(st, v);
      const active = v === st.view;
      a.classList.toggle("active", active);
      if (active) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    // defaultSelected mirrors the choice into the "selected" attribute (visible in a DOM dump).
    const rangeValue = isCustom(st) ? "custom" : st.range;
    for (const opt of $("f-range").options) {
      if (opt.value === "custom") opt.hidden = !isCustom(st);
      opt.defaultSelected = opt.value === rangeValue;
      opt.selected = opt.value === rangeValue;
    }
    $("f-clear").hidden = !(st.tool || st.client || st.user || isCustom(st));
    $("range-note").textContent = isCustom(st) ? rangeText(st) : "";
    fillSelect($("f-tool"), facetCache.get(facetKey(st))?.tools, st.tool);
    fillSelect($("f-client"), facetCache.get(facetKey(st))?.clients, st.client);
    fillSelect($("f-user"), facetCache.get(facetKey(st))?.users, st.user);
  }

  // Options: "All", the facet values, and the current value even if absent.
  function fillSelect(sel, values, selected) {
    const list = Array.isArray(values) ? values.filter((v) => typeof v === "string") : [];
    if (selected && !list.includes(selected)) list.unshift(selected);
    const opts = [h("option", { value: "" }, "All")];
    for (const v of list) {
      const o = h("option", { value: v }, clip(v, OPTION_MAX));
      if (v.length > OPTION_MAX) o.title = clip(v, TITLE_MAX);
      opts.push(o);
    }
    sel.replaceChildren(...opts);
    for (const o of opts) o.defaultSelected = o.selected = o.value === (selected || "");
  }

  const facetKey = (st) => [st.range, st.from || "", st.to || ""].join("|");

  async function loadFacets(st) {
    const key = facetKey(st);
    if (facetCache.has(key)) return;
    try {
      const f = await api("/api/facets", apiParams(st, ["tool", "client", "user"]));
      facetCache.set(key, f || {});
      if (facetKey(current) === key) updateChrome(current);
    } catch (_) {
      /* the view shows the error; the selects keep "All" + current value */
    }
  }

  // Apply filter changes on top of the hash as it is now (not the last render).
  function go(over) {
    const st = parseHash();
    location.hash = hashFor(st.view, st.id, filterQuery(st, over));
  }

  function bindFilters() {
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("f-range").addEventListener("change", (e) => {
      if (e.target.value !== "custom") go({ range: e.target.value, from: null, to: null });
    });
    $("f-tool").addEventListener("change", (e) => go({ tool: e.target.value || null }));
    $("f-client").addEventListener("change", (e) => go({ client: e.target.value || null }));
    $("f-user").addEventListener("change", (e) => go({ user: e.target.value || null }));
    $("f-clear").addEventListener("click", () => go({ tool: null, client: null, user: null, from: null, to: null }));
  }

  // ---------------------------------------------------------------------- render
  let renderSeq = 0;
  let liveTimer = null;

  function stopLive() {
    if (liveTimer !== null) clearTimeout(liveTimer);
    liveTimer = null;
  }

  async function render() {
    const seq = ++renderSeq;
    const isCurrent = () => seq === renderSeq;
    stopLive();
    delete document.body.dataset.ready;
    delete document.body.dataset.error;
    const st = (current = parseHash());
    const main = $("main");
    updateChrome(st);
    loadFacets(st);
    main.classList.add("loading");
    main.setAttribute("aria-busy", "true");
    try {
      const route = Object.prototype.hasOwnProperty.call(ROUTES, st.view) ? ROUTES[st.view] : null;
      if (!route) throw new ApiError(404, "Unknown view: " + clip(st.view, 80));
      const out = await route(st, isCurrent);
      if (!isCurrent()) return;
      main.replaceChildren(out.node);
      document.title = out.title + " \u00b7 MCP Analytics";
      if (out.after) out.after();
      document.body.dataset.ready = out.ready;
    } catch (err) {
      if (!isCurrent()) return;
      console.warn("render failed:", err && err.message);
      main.replaceChildren(pageHead("Could not load this view", null), errorBox(err));
      document.title = "Error \u00b7 MCP Analytics";
      document.body.dataset.error = err && err.status ? String(err.status) : String((err && err.message) || err);
    } finally {
      if (isCurrent()) {
        main.classList.remove("loading");
        main.removeAttribute("aria-busy");
      }
    }
  }

  bindFilters();
  window.addEventListener("hashchange", render);
  render();
})();
