/* Kloset viewer: a snapshot's tree (paged, loaded as you scroll), file previews, errors. */
"use strict";
(function () {
  const K = window.K;
  const el = K.el;
  const PAGE = 200;
  const CODE_EXT = /\.(py|js|ts|tsx|jsx|json|c|h|cc|cpp|go|rs|java|sh|bash|yml|yaml|toml|ini|cfg|md|html|htm|xml|css|scss|sql|rb|lua|php|kt|swift)$/i;
  const IMAGE_EXT = /\.(png|jpe?g|gif|webp|bmp|ico|svg|avif|tiff?|heic)$/i;

  function iconFor(entry) {
    if (entry.type === "dir") return "ic-dir";
    if (entry.type === "symlink") return "ic-link";
    if (IMAGE_EXT.test(entry.name)) return "ic-image";
    if (CODE_EXT.test(entry.name)) return "ic-code";
    return "ic-file";
  }

  function crumbs(snap, path) {
    const out = [el("a", { href: "#/" }, "Snapshots"), el("span", { class: "sep" }, "›")];
    const parts = path.split("/").filter(Boolean);
    const rootLabel = `${snap.short_id} · ${K.fmtTime(snap.time)}`;
    if (!parts.length) out.push(el("span", { class: "here" }, rootLabel));
    else out.push(el("a", { href: K.snapHref(snap.id, "/") }, rootLabel));
    let acc = "";
    parts.forEach((p, i) => {
      acc += "/" + p;
      out.push(el("span", { class: "sep" }, "›"));
      out.push(i === parts.length - 1 ? el("span", { class: "here" }, p) : el("a", { href: K.snapHref(snap.id, acc) }, p));
    });
    return el("nav", { class: "crumbs", "aria-label": "Breadcrumbs" }, out);
  }

  function kv(k, v) { return el("div", { class: "kv" }, el("span", { class: "k" }, k), el("span", { class: "v" }, v)); }

  function snapBar(snap) {
    return el("div", { class: "panel snapbar" },
      kv("Snapshot", el("span", { class: "id", title: snap.id }, snap.short_id)),
      kv("Date", K.fmtTime(snap.time)),
      kv("Source", el("span", { class: "mono" }, snap.source || "—")),
      kv("Host", snap.host || "—"),
      kv("Files", K.fmtNum(snap.files)),
      kv("Size", K.fmtSize(snap.bytes)),
      snap.tags.length ? kv("Tags", snap.tags.map((t) => el("span", { class: "tag" }, t))) : null,
      kv("Errors", snap.errors ? el("a", { class: "badge bad", href: "#/errors/" + snap.id }, K.fmtNum(snap.errors)) : el("span", { class: "badge ok" }, "0")),
      originKv(snap.origin || {}),
    );
  }

  // Who ran the backup (e.g. a Prefect flow run): its `run` name, linked to its `url` when that
  // is a web address; every label is in the tooltip.
  function originKv(origin) {
    const keys = Object.keys(origin);
    if (!keys.length) return null;
    const title = keys.map((k) => `${k}: ${origin[k]}`).join("\n");
    const text = origin.run || origin.run_id || keys.map((k) => origin[k]).join(" ");
    const url = /^https?:\/\//.test(origin.url || "") ? origin.url : null;
    const value = url
      ? el("a", { id: "origin-link", href: url, target: "_blank", rel: "noopener noreferrer", title }, text)
      : el("span", { title }, text);
    return kv(origin.orchestrator ? `${origin.orchestrator[0].toUpperCase()}${origin.orchestrator.slice(1)} run` : "Run", value);
  }

  K.pages.browse = async function (ref, path, query, token) {
    path = path.replace(/\/+$/, "") || "/";
    const [snap, doc] = await Promise.all([
      K.api(`/api/snapshots/${encodeURIComponent(ref)}`),
      K.api(K.apiSnap(ref, "tree", { path, limit: PAGE })),
    ]);
    if (doc.entry.type === "dir") return folderView(snap, path, doc, token);
    if (doc.entry.type === "file") return fileView(snap, path, doc.entry, token);
    return K.mount(token, crumbs(snap, path), snapBar(snap), el("div", { class: "panel panel-pad" },
      el("h2", null, doc.entry.name), el("p", null, "Symbolic link to ", el("code", null, doc.entry.target || "")),
      el("p", { class: "muted" }, "Modified ", K.fmtTime(doc.entry.mtime))));
  };

  function entryRow(snap, e) {
    const href = K.snapHref(snap.id, e.path);
    return el("tr", { class: "clickable", "data-name": e.name, "data-type": e.type, onclick: (ev) => { if (!ev.target.closest("a")) location.hash = href; } },
      el("td", null, el("div", { class: "name-cell" }, el("span", { class: "ic " + iconFor(e) }),
        el("a", { href }, e.name + (e.type === "dir" ? "/" : "")),
        e.type === "symlink" ? el("span", { class: "muted small" }, "→ " + (e.target || "")) : null)),
      el("td", { class: "num" }, e.type === "file" ? K.fmtSize(e.size) : ""),
      el("td", { class: "nowrap muted" }, K.fmtTime(e.mtime)),
      el("td", { class: "mono muted small" }, e.mode),
    );
  }

  function folderView(snap, path, doc, token) {
    const tbody = el("tbody");
    if (path !== "/") {
      tbody.append(el("tr", null, el("td", { colspan: 4 }, el("div", { class: "name-cell" }, el("span", { class: "ic ic-up" }),
        el("a", { href: K.snapHref(snap.id, K.parent(path)) }, "Parent folder")))));
    }
    for (const e of doc.entries) tbody.append(entryRow(snap, e));
    let loaded = doc.entries.length;
    const status = el("span", { class: "count", id: "loaded-count" });
    const moreBtn = el("button", { class: "btn", id: "load-more" }, "Load more");
    const moreRow = el("tr", { class: "more-row" }, el("td", { colspan: 4 }, moreBtn));
    const update = () => {
      status.textContent = `${K.fmtNum(doc.total)} items` + (loaded < doc.total ? ` · ${K.fmtNum(loaded)} shown` : "");
      moreRow.hidden = loaded >= doc.total;
      moreBtn.textContent = `Load more (${K.fmtNum(doc.total - loaded)} remaining)`;
    };
    let busy = false;
    const loadMore = async () => {
      if (busy || loaded >= doc.total || !K.current(token)) return;
      busy = true;
      moreBtn.disabled = true;
      try {
        const next = await K.api(K.apiSnap(snap.id, "tree", { path, offset: loaded, limit: PAGE }));
        if (!K.current(token)) return;
        for (const e of next.entries) tbody.insertBefore(entryRow(snap, e), moreRow);
        loaded += next.entries.length;
        if (!next.entries.length) loaded = doc.total;
      } catch (err) {
        moreBtn.textContent = "Retry: " + err.message;
      } finally {
        busy = false;
        moreBtn.disabled = false;
        update();
      }
    };
    moreBtn.addEventListener("click", loadMore);
    tbody.append(moreRow);
    update();
    const prev = snap.parent ? el("a", { class: "btn", href: "#/diff?" + K.qs({ a: snap.parent, b: snap.id, path }) }, "Compare with previous") : null;
    const toolbar = el("div", { class: "toolbar" },
      el("span", { class: "title" }, path === "/" ? "/" : K.basename(path)), status, el("span", { class: "spacer" }),
      el("a", { class: "btn", href: "#/search?" + K.qs({ snapshot: snap.id, path }) }, "Search here"),
      prev,
      el("a", { class: "btn", id: "dl-tar", href: K.apiSnap(snap.id, "archive", { path, format: "tar" }), download: "" }, "Download .tar"),
      el("a", { class: "btn", id: "dl-zip", href: K.apiSnap(snap.id, "archive", { path, format: "zip" }), download: "" }, "Download .zip"),
      el("button", { class: "btn primary", id: "restore-btn", onclick: () => K.restoreDialog(snap, path, "dir") }, "Restore…"),
    );
    const table = el("table", { class: "grid", id: "tree" },
      el("thead", null, el("tr", null, el("th", null, "Name"), el("th", { class: "num" }, "Size"), el("th", null, "Modified"), el("th", null, "Mode"))),
      tbody);
    if (!K.mount(token, crumbs(snap, path), snapBar(snap), el("div", { class: "panel" }, toolbar,
      doc.total ? table : el("div", { class: "empty" }, "This folder is empty.")))) return;
    // Load the next window as the end of the list scrolls into view.
    if ("IntersectionObserver" in window) {
      const io = new IntersectionObserver((items) => {
        if (!K.current(token)) { io.disconnect(); return; }
        if (items.some((i) => i.isIntersecting)) loadMore();
      }, { rootMargin: "400px" });
      io.observe(moreRow);
    }
  }

  async function fileView(snap, path, entry, token) {
    const pv = await K.api(K.apiSnap(snap.id, "preview", { path }));
    const actions = el("div", { class: "btn-row" },
      el("a", { class: "btn", id: "download-file", href: pv.download_url, download: entry.name }, "Download"),
      ["image", "pdf", "text", "audio", "video"].includes(pv.kind)
        ? el("a", { class: "btn", href: pv.raw_url, target: "_blank", rel: "noopener" }, "Open raw") : null,
      el("button", { class: "btn primary", id: "restore-btn", onclick: () => K.restoreDialog(snap, path, "file") }, "Restore…"),
    );
    const head = el("div", { class: "filehead" },
      el("span", { class: "ic " + iconFor(entry), style: null }),
      el("div", null, el("h1", null, entry.name), el("div", { class: "meta" },
        el("span", null, K.fmtSize(entry.size)), el("span", null, K.fmtTime(entry.mtime)),
        el("span", { class: "mono" }, entry.mode), el("span", null, pv.mime),
        entry.md5 ? el("span", { class: "mono", title: "MD5 recorded by the source" }, "md5 " + entry.md5) : null)),
      el("span", { class: "spacer" }), actions);
    K.mount(token, crumbs(snap, path), el("div", { class: "panel", id: "preview" }, head, previewBody(pv)));
  }

  function previewBody(pv) {
    const cap = (what) => el("div", { class: "truncated" }, `Showing the first ${K.fmtSize(pv.limit)} ${what} of ${K.fmtSize(pv.size)}. `,
      el("a", { href: pv.download_url, download: "" }, "Download the whole file"), ".");
    switch (pv.kind) {
      case "empty": return el("div", { class: "empty" }, "This file is empty.");
      case "image": return el("div", { class: "media" }, el("img", { src: pv.raw_url, alt: pv.entry.name, id: "preview-image" }));
      case "pdf": return el("iframe", { class: "pdf", src: pv.raw_url, title: pv.entry.name });
      case "audio": return el("div", { class: "media" }, el("audio", { src: pv.raw_url, controls: true }));
      case "video": return el("div", { class: "media" }, el("video", { src: pv.raw_url, controls: true }));
      case "text": return el("div", null, pv.truncated ? cap("bytes") : null, K.codeView(pv.text, pv.language));
      default: return el("div", null,
        el("div", { class: "toolbar" }, el("span", { class: "muted" }, "Binary file: hex dump of the first bytes")),
        pv.truncated ? cap("bytes as hex") : null, el("pre", { class: "hex", id: "hexdump" }, pv.hex.join("\n")));
    }
  }

  K.codeView = function (text, lang) {
    const lines = text.split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    const gutter = Array.from({ length: lines.length }, (_v, i) => i + 1).join("\n");
    const H = window.KlosetHighlight;
    return el("div", { class: "code", id: "code" },
      el("pre", { class: "gutter", "aria-hidden": "true" }, gutter),
      el("pre", { class: "src", "data-lang": lang || "text", html: H.highlight(lines.join("\n"), lang) }));
  };

  K.pages.errors = async function (ref, query, token) {
    const size = 100;
    const page = Math.max(1, parseInt(query.get("page") || "1", 10) || 1);
    const [snap, data] = await Promise.all([
      K.api(`/api/snapshots/${encodeURIComponent(ref)}`),
      K.api(K.apiSnap(ref, "errors", { offset: (page - 1) * size, limit: size })),
    ]);
    const pages = Math.max(1, Math.ceil(data.stored / size));
    const more = data.total > data.stored ? el("div", { class: "notice info" },
      `The snapshot records the first ${K.fmtNum(data.stored)} of ${K.fmtNum(data.total)} errors.`) : null;
    K.mount(token,
      el("nav", { class: "crumbs" }, el("a", { href: "#/" }, "Snapshots"), el("span", { class: "sep" }, "›"),
        el("a", { href: K.snapHref(snap.id, "/") }, `${snap.short_id} · ${K.fmtTime(snap.time)}`), el("span", { class: "sep" }, "›"),
        el("span", { class: "here" }, "Errors")),
      snapBar(snap), more,
      el("div", { class: "panel" },
        data.items.length ? el("table", { class: "grid", id: "errors" },
          el("thead", null, el("tr", null, el("th", null, "Path"), el("th", null, "Error"))),
          el("tbody", null, data.items.map((e) => el("tr", null, el("td", { class: "path mono" }, e.path), el("td", null, e.error)))))
          : el("div", { class: "empty" }, "This snapshot recorded no errors: every file was read."),
        pages > 1 ? el("div", { class: "pager" },
          el("button", { class: "btn", disabled: page <= 1, onclick: () => K.setQuery({ page: page - 1 }) }, "‹ Prev"),
          el("span", null, `Page ${page} of ${pages}`),
          el("button", { class: "btn", disabled: page >= pages, onclick: () => K.setQuery({ page: page + 1 }) }, "Next ›")) : null));
  };
})();
