/* Kloset viewer: helpers, the hash router and the snapshot list. Pages live in browse.js and
 * tools.js; everything talks to the JSON API described in docs/UI.md. */
"use strict";
(function () {
  const K = (window.K = { pages: {}, seq: 0, info: null });

  // -- DOM and formatting helpers --------------------------------------------------------------
  K.el = function (tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "html") e.innerHTML = v; // only ever given escaped highlighter output
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      e.append(kid instanceof Node ? kid : String(kid));
    }
    return e;
  };
  const el = K.el;

  K.fmtSize = function (n) {
    if (n === null || n === undefined) return "—";
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n / 1024, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  };
  K.fmtNum = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
  K.fmtTime = function (iso) {
    if (!iso) return "—";
    // Times carry nanoseconds; Date only promises to parse milliseconds.
    const d = new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
    const p = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };
  K.qs = function (params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.set(k, v);
    return u.toString();
  };
  K.encPath = (path) => path.split("/").map(encodeURIComponent).join("/");
  K.snapHref = (id, path) => "#/snap/" + id + K.encPath(path === "/" ? "/" : path);
  K.parent = (path) => (path.lastIndexOf("/") <= 0 ? "/" : path.slice(0, path.lastIndexOf("/")));
  K.basename = (path) => path.slice(path.lastIndexOf("/") + 1);
  K.apiSnap = (id, what, params) => `/api/snapshots/${encodeURIComponent(id)}/${what}?` + K.qs(params || {});

  // -- API -------------------------------------------------------------------------------------
  K.api = async function (url, opts) {
    opts = opts || {};
    const headers = { "X-Kloset": "1", Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(url, {
      method: opts.method || "GET", headers, credentials: "same-origin",
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    let data = null;
    try { data = await res.json(); } catch (_e) { data = null; }
    if (res.status === 401) throw new Error("This page has no valid access token: open the URL printed by `kloset ui` again.");
    if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
    return data;
  };

  // Snapshot lists for the pickers on the search and diff pages (newest first, cached briefly).
  let recent = null, recentAt = 0;
  K.recentSnapshots = async function () {
    if (!recent || Date.now() - recentAt > 5000) {
      recent = (await K.api("/api/snapshots?" + K.qs({ sort: "time", order: "desc", limit: 500 }))).items;
      recentAt = Date.now();
    }
    return recent;
  };
  K.snapLabel = (s) => `${K.fmtTime(s.time)} · ${s.short_id}${s.tags.length ? " · " + s.tags.join(", ") : ""}`;

  // -- router ----------------------------------------------------------------------------------
  K.route = function () {
    const raw = location.hash.replace(/^#/, "") || "/";
    const q = raw.indexOf("?");
    const pathPart = q >= 0 ? raw.slice(0, q) : raw;
    const parts = pathPart.split("/").filter((p) => p !== "").map((p) => {
      try { return decodeURIComponent(p); } catch (_e) { return p; }
    });
    return { parts, query: new URLSearchParams(q >= 0 ? raw.slice(q + 1) : ""), trailing: pathPart.endsWith("/") };
  };
  K.setQuery = function (updates) {
    const { parts, query } = K.route();
    for (const [k, v] of Object.entries(updates)) {
      if (v === null || v === undefined || v === "") query.delete(k); else query.set(k, v);
    }
    const base = "#/" + parts.map(encodeURIComponent).join("/");
    const qs = query.toString();
    location.hash = base + (qs ? "?" + qs : "");
  };
  K.current = (token) => token === K.seq;
  K.fill = function (parent, ...nodes) {
    parent.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
    return parent;
  };
  K.mount = function (token, ...nodes) {
    if (!K.current(token)) return false;
    K.fill(document.getElementById("main"), ...nodes);
    return true;
  };
  K.errorBox = (err) => el("div", { class: "notice error" }, String(err.message || err));

  async function dispatch() {
    const token = ++K.seq;
    const { parts, query } = K.route();
    const page = parts[0] || "snapshots";
    for (const a of document.querySelectorAll("nav a")) {
      const nav = a.dataset.nav;
      a.classList.toggle("active", nav === page || (nav === "snapshots" && (page === "snap" || page === "errors")));
    }
    const main = document.getElementById("main");
    const slow = setTimeout(() => {
      if (K.current(token)) main.replaceChildren(el("p", { class: "loading" }, "Loading…"));
    }, 150);
    try {
      if (page === "snapshots") await K.pages.snapshots(query, token);
      else if (page === "snap" && parts[1]) await K.pages.browse(parts[1], "/" + parts.slice(2).join("/"), query, token);
      else if (page === "errors" && parts[1]) await K.pages.errors(parts[1], query, token);
      else if (K.pages[page]) await K.pages[page](query, token);
      else K.mount(token, el("div", { class: "notice" }, "No such page. ", el("a", { href: "#/" }, "Back to the snapshots.")));
    } catch (err) {
      K.mount(token, K.errorBox(err));
    } finally {
      clearTimeout(slow);
    }
  }

  // -- snapshot list ---------------------------------------------------------------------------
  const COLUMNS = [
    ["time", "Date", ""], ["id", "ID", ""], ["tags", "Tags", ""], ["source", "Source", ""],
    ["files", "Files", "num"], ["bytes", "Size", "num"], ["errors", "Errors", "num"],
  ];
  let filterFocused = false;

  K.pages.snapshots = async function (query, token) {
    const sort = query.get("sort") || "time";
    const order = query.get("order") || "desc";
    const size = Math.min(500, Math.max(10, parseInt(query.get("size") || "50", 10) || 50));
    const page = Math.max(1, parseInt(query.get("page") || "1", 10) || 1);
    const filter = query.get("q") || "";
    const data = await K.api("/api/snapshots?" + K.qs({ sort, order, offset: (page - 1) * size, limit: size, q: filter }));
    const pages = Math.max(1, Math.ceil(data.total / size));

    const head = el("tr", null, COLUMNS.map(([key, label, cls]) => {
      const active = key === sort;
      return el("th", {
        class: `sortable ${cls} ${active ? "sorted" : ""}`, "data-sort": key,
        onclick: () => K.setQuery({ sort: key, order: active && order === "desc" ? "asc" : "desc", page: 1 }),
      }, label, active ? el("span", { class: "arrow" }, order === "desc" ? "▼" : "▲") : null);
    }));
    const rows = data.items.map((s) => el("tr", { class: "clickable", "data-id": s.id, onclick: () => { location.hash = K.snapHref(s.id, "/"); } },
      el("td", { class: "nowrap" }, K.fmtTime(s.time), el("div", { class: "muted small" }, s.host || "")),
      el("td", null, el("a", { class: "id", href: K.snapHref(s.id, "/"), title: s.id }, s.short_id)),
      el("td", null, s.tags.length ? s.tags.map((t) => el("span", { class: "tag" }, t)) : el("span", { class: "muted" }, "—")),
      el("td", { class: "ellipsis", title: s.source }, s.source),
      el("td", { class: "num" }, K.fmtNum(s.files)),
      el("td", { class: "num" }, K.fmtSize(s.bytes)),
      el("td", { class: "num" }, s.errors
        ? el("a", { class: "badge bad", href: "#/errors/" + s.id, onclick: (e) => e.stopPropagation() }, K.fmtNum(s.errors))
        : el("span", { class: "badge ok" }, "0")),
    ));
    const input = el("input", {
      type: "search", id: "snap-filter", placeholder: "Filter by id, tag, source, host…", value: filter, style: null,
      oninput: debounce((e) => { filterFocused = true; K.setQuery({ q: e.target.value, page: 1 }); }, 300),
      onblur: () => { filterFocused = false; },
    });
    const pager = el("div", { class: "pager" },
      el("span", null, `${K.fmtNum(data.total ? data.offset + 1 : 0)}–${K.fmtNum(data.offset + data.items.length)} of ${K.fmtNum(data.total)}`),
      el("select", { onchange: (e) => K.setQuery({ size: e.target.value, page: 1 }), "aria-label": "Page size" },
        [25, 50, 100, 200].map((n) => el("option", { value: n, selected: n === size }, `${n} per page`))),
      el("button", { class: "btn", disabled: page <= 1, onclick: () => K.setQuery({ page: page - 1 }) }, "‹ Prev"),
      el("span", null, `Page ${page} of ${pages}`),
      el("button", { class: "btn", disabled: page >= pages, onclick: () => K.setQuery({ page: page + 1 }) }, "Next ›"),
    );
    const unreadable = data.unreadable.length
      ? el("div", { class: "notice error" }, `${data.unreadable.length} snapshot(s) could not be read: `,
        data.unreadable.slice(0, 3).map((u) => `${u.id.slice(0, 8)} (${u.error})`).join("; "))
      : null;
    const mounted = K.mount(token,
      el("div", { class: "page-head" }, el("h1", null, "Snapshots"), el("span", { class: "count" }, `${K.fmtNum(data.total)} total`),
        el("span", { class: "spacer" }), input),
      unreadable,
      el("div", { class: "panel" },
        data.items.length
          ? el("table", { class: "grid", id: "snapshots" }, el("thead", null, head), el("tbody", null, rows))
          : el("div", { class: "empty" }, filter ? "No snapshot matches the filter." : "This store has no snapshots yet."),
        pager),
    );
    if (mounted && filterFocused) {
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
  };

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }
  K.debounce = debounce;

  window.addEventListener("hashchange", dispatch);
  window.addEventListener("DOMContentLoaded", async () => {
    try {
      K.info = await K.api("/api/info");
      document.getElementById("store").textContent = K.info.store;
    } catch (err) {
      document.getElementById("main").replaceChildren(K.errorBox(err));
      return;
    }
    dispatch();
  });
})();
