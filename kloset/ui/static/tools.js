/* Kloset viewer: search, diff, and restores (the dialog and the jobs page). */
"use strict";
(function () {
  const K = window.K;
  const el = K.el;

  function snapshotSelect(id, snaps, value, allLabel) {
    const opts = snaps.map((s) => el("option", { value: s.id, selected: s.id === value || s.short_id === value }, K.snapLabel(s)));
    // An id from the URL that is older than the listed snapshots still gets an entry.
    if (value && value !== "all" && !snaps.some((s) => s.id.startsWith(value))) opts.unshift(el("option", { value, selected: true }, value));
    if (allLabel) opts.unshift(el("option", { value: "all", selected: !value || value === "all" }, allLabel));
    return el("select", { id, name: id }, opts);
  }
  const field = (label, input, grow) => el("label", { class: "field" + (grow ? " grow" : "") }, el("span", null, label), input);

  // -- search ----------------------------------------------------------------------------------
  K.pages.search = async function (query, token) {
    const snaps = await K.recentSnapshots();
    const pattern = query.get("pattern") || "";
    const pat = el("input", { type: "text", id: "pattern", value: pattern, placeholder: "*.pdf   or   docs/**/*.md   or   /etc/*.conf", autofocus: true });
    const sel = snapshotSelect("snapshot", snaps, query.get("snapshot"), "All snapshots");
    const inPath = el("input", { type: "text", id: "in-path", value: query.get("path") || "/" });
    const icase = el("input", { type: "checkbox", id: "icase", checked: query.get("icase") === "1" });
    const form = el("form", { class: "form panel panel-pad", id: "search-form", onsubmit: (e) => {
      e.preventDefault();
      K.setQuery({ pattern: pat.value.trim(), snapshot: sel.value === "all" ? "" : sel.value, path: inPath.value === "/" ? "" : inPath.value, icase: icase.checked ? "1" : "" });
    } },
    field("Pattern", pat, true), field("In", sel), field("Folder", inPath),
    el("label", { class: "check" }, icase, "ignore case"),
    el("button", { class: "btn primary", type: "submit" }, "Search"));
    const results = el("div", { id: "search-results" });
    if (!K.mount(token, el("div", { class: "page-head" }, el("h1", null, "Search")), form, results)) return;
    pat.focus();
    if (!pattern) {
      results.append(el("p", { class: "muted" }, "A pattern without “/” matches names (like find -name); with “/” it matches paths. ",
        "“*” and “?” stay within a name, “**” crosses folders."));
      return;
    }
    results.append(el("p", { class: "loading" }, "Searching…"));
    const data = await K.api("/api/search?" + K.qs({ pattern, snapshot: query.get("snapshot") || "all", path: query.get("path"), icase: query.get("icase") }));
    if (!K.current(token)) return;
    const rows = data.items.map((m) => el("tr", null,
      el("td", { class: "nowrap" }, el("a", { class: "id", href: K.snapHref(m.snapshot, "/") }, m.snapshot.slice(0, 8)),
        el("div", { class: "muted small" }, K.fmtTime(m.snapshot_time))),
      el("td", { class: "path" }, el("a", { href: K.snapHref(m.snapshot, m.path) }, m.path)),
      el("td", { class: "muted" }, m.type),
      el("td", { class: "num" }, m.type === "file" ? K.fmtSize(m.size) : ""),
      el("td", { class: "nowrap muted" }, K.fmtTime(m.mtime))));
    const note = `${K.fmtNum(data.items.length)} match${data.items.length === 1 ? "" : "es"} in ${K.fmtNum(data.snapshots_searched)} of ${K.fmtNum(data.snapshots_total)} snapshot(s)`;
    K.fill(results, 
      data.truncated ? el("div", { class: "notice info" }, "Showing the first results only: narrow the pattern, the folder or the snapshot to see the rest.") : null,
      el("div", { class: "panel" },
        el("div", { class: "toolbar" }, el("span", { class: "title" }, note)),
        data.items.length ? el("table", { class: "grid", id: "results" },
          el("thead", null, el("tr", null, ["Snapshot", "Path", "Type"].map((h) => el("th", null, h)), el("th", { class: "num" }, "Size"), el("th", null, "Modified"))),
          el("tbody", null, rows)) : el("div", { class: "empty" }, "Nothing matches.")));
  };

  // -- diff ------------------------------------------------------------------------------------
  K.pages.diff = async function (query, token) {
    const snaps = await K.recentSnapshots();
    const a = query.get("a") || (snaps[1] && snaps[1].id) || "";
    const b = query.get("b") || (snaps[0] && snaps[0].id) || "";
    const selA = snapshotSelect("diff-a", snaps, a), selB = snapshotSelect("diff-b", snaps, b);
    const inPath = el("input", { type: "text", id: "diff-path", value: query.get("path") || "/" });
    const form = el("form", { class: "form panel panel-pad", id: "diff-form", onsubmit: (e) => {
      e.preventDefault();
      K.setQuery({ a: selA.value, b: selB.value, path: inPath.value === "/" ? "" : inPath.value, run: "1" });
    } },
    field("Old snapshot", selA, true), field("New snapshot", selB, true), field("Folder", inPath),
    el("button", { class: "btn primary", type: "submit" }, "Compare"));
    const out = el("div", { id: "diff-results" });
    if (!K.mount(token, el("div", { class: "page-head" }, el("h1", null, "Diff")), form, out)) return;
    if (snaps.length < 2 && !query.get("a")) { out.append(el("p", { class: "muted" }, "A diff needs two snapshots.")); return; }
    if (!query.get("a") && !query.get("run")) { out.append(el("p", { class: "muted" }, "Pick two snapshots and press Compare.")); return; }
    out.append(el("p", { class: "loading" }, "Comparing…"));
    const d = await K.api("/api/diff?" + K.qs({ a, b, path: query.get("path") }));
    if (!K.current(token)) return;
    const all = [...d.added, ...d.removed, ...d.changed].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    const tbody = el("tbody");
    const show = (kind) => {
      K.fill(tbody, ...all.filter((e) => kind === "all" || e.kind === kind).map((e) => {
        const snap = e.kind === "removed" ? d.old : d.new;
        const sizes = e.kind === "changed" && e.type === "file" ? `${K.fmtSize(e.old_size)} → ${K.fmtSize(e.new_size)}`
          : K.fmtSize(e.kind === "removed" ? e.old_size : e.new_size);
        return el("tr", { "data-kind": e.kind },
          el("td", null, el("span", { class: "badge " + e.kind }, { added: "+ added", removed: "− removed", changed: "~ changed" }[e.kind])),
          el("td", { class: "path" }, el("a", { href: K.snapHref(snap, e.path) }, e.path + (e.type === "dir" ? "/" : ""))),
          el("td", { class: "reasons" }, e.reasons.join(", ")),
          el("td", { class: "num" }, e.type === "file" ? sizes : ""));
      }));
      for (const btn of tabs.querySelectorAll("button")) btn.classList.toggle("active", btn.dataset.kind === kind);
    };
    const tabs = el("div", { class: "tabs" }, ["all", "added", "removed", "changed"].map((k) =>
      el("button", { type: "button", "data-kind": k, onclick: () => show(k) }, k[0].toUpperCase() + k.slice(1))));
    const c = d.counts;
    K.fill(out, 
      d.truncated ? el("div", { class: "notice info" }, "Large diff: each list is cut at its first entries.") : null,
      el("div", { class: "panel" },
        el("div", { class: "summary", id: "diff-summary" },
          el("span", { class: "badge added" }, `+${K.fmtNum(c.added)} added`),
          el("span", { class: "badge removed" }, `−${K.fmtNum(c.removed)} removed`),
          el("span", { class: "badge changed" }, `~${K.fmtNum(c.changed)} changed`),
          el("span", { class: "muted small" }, `${d.old.slice(0, 8)} (${K.fmtTime(d.old_time)}) → ${d.new.slice(0, 8)} (${K.fmtTime(d.new_time)}) · ${K.fmtNum(d.trees_skipped)} unchanged folders skipped`),
          tabs),
        all.length ? el("table", { class: "grid", id: "diff-table" },
          el("thead", null, el("tr", null, el("th", null, "Change"), el("th", null, "Path"), el("th", null, "What"), el("th", { class: "num" }, "Size"))),
          tbody) : el("div", { class: "empty" }, "No differences: the two snapshots hold the same files.")));
    show("all");
  };

  // -- restore ---------------------------------------------------------------------------------
  function progressBar(job) {
    const pct = job.state === "done" ? 100 : job.bytes_total ? Math.min(100, (100 * job.bytes_done) / job.bytes_total)
      : job.files_total ? (100 * job.files_done) / job.files_total : 0;
    const bar = el("div", { class: "progress " + job.state });
    const fill = el("div");
    fill.style.width = pct.toFixed(1) + "%";
    bar.append(fill);
    return bar;
  }
  const jobLine = (job) => el("div", { class: "job-line" },
    el("span", { class: "state " + job.state }, job.state),
    el("span", null, `${K.fmtNum(job.files_done)} / ${K.fmtNum(job.files_total)} files · ${K.fmtSize(job.bytes_done)} / ${K.fmtSize(job.bytes_total)}`));

  K.restoreDialog = function (snap, path, type) {
    const root = document.getElementById("modal-root");
    const targets = (K.info && K.info.targets) || [];
    const onKey = (e) => { if (e.key === "Escape") close(); };
    const close = () => { document.removeEventListener("keydown", onKey); root.replaceChildren(); };
    document.addEventListener("keydown", onKey);
    const target = el("select", { id: "restore-target" }, targets.map((t) => el("option", { value: t.id }, t.label)));
    const sub = el("input", { type: "text", id: "restore-subdir", placeholder: "optional sub-folder, e.g. restored/2024-05-01" });
    const overwrite = el("input", { type: "checkbox", id: "restore-overwrite" });
    const status = el("div", { id: "restore-status" });
    const start = el("button", { class: "btn primary", id: "restore-start", disabled: !targets.length }, "Start restore");
    const body = el("div", { class: "body" },
      el("div", null, `Restore the ${type === "dir" ? "folder" : "file"} `, el("code", null, path), " of snapshot ", el("span", { class: "id" }, snap.short_id), "."),
      targets.length ? [field("Destination", target), field("Sub-folder", sub), el("label", { class: "check" }, overwrite, "replace files that differ")]
        : el("div", { class: "notice" }, "No restore destination is configured. Start the viewer with --restore-target PATH (or @NAME) to enable restores."),
      status);
    start.addEventListener("click", async () => {
      start.disabled = true;
      K.fill(status, el("p", { class: "muted" }, "Starting…"));
      try {
        let job = await K.api("/api/restore", { method: "POST", body: { snapshot: snap.id, path, target: target.value, subdir: sub.value, overwrite: overwrite.checked } });
        while (root.contains(status)) {
          K.fill(status, progressBar(job), jobLine(job),
            job.message ? el("p", { class: job.state === "failed" ? "notice error" : "muted", id: "restore-message" }, job.message) : null);
          if (job.state === "done" || job.state === "failed") break;
          await new Promise((r) => setTimeout(r, 400));
          job = await K.api("/api/jobs/" + job.id);
        }
      } catch (err) {
        K.fill(status, K.errorBox(err));
        start.disabled = false;
      }
    });
    root.replaceChildren(el("div", { class: "backdrop", onclick: (e) => { if (e.target === e.currentTarget) close(); } },
      el("div", { class: "dialog", role: "dialog", "aria-modal": "true" },
        el("header", null, "Restore"), body,
        el("footer", null, el("a", { class: "btn", href: "#/restores", onclick: close }, "All restores"),
          el("button", { class: "btn", onclick: close }, "Close"), start))));
  };

  K.pages.restores = async function (query, token) {
    const data = await K.api("/api/jobs");
    const targets = (K.info && K.info.targets) || [];
    const rows = data.items.map((j) => el("tr", null,
      el("td", { class: "nowrap" }, K.fmtTime(new Date(j.started * 1000).toISOString())),
      el("td", { class: "path" }, el("a", { href: K.snapHref(j.snapshot, j.path) }, el("span", { class: "id" }, j.snapshot.slice(0, 8)), " ", j.path)),
      el("td", { class: "path mono small" }, j.destination),
      el("td", null, progressBar(j), jobLine(j), j.message ? el("div", { class: "muted small" }, j.message) : null)));
    if (!K.mount(token,
      el("div", { class: "page-head" }, el("h1", null, "Restores")),
      el("div", { class: "panel panel-pad" }, el("h2", null, "Destinations"),
        targets.length ? el("ul", null, targets.map((t) => el("li", null, el("code", null, t.label))))
          : el("p", { class: "muted" }, "None configured: start the viewer with --restore-target PATH or @NAME.")),
      el("div", { class: "panel" }, rows.length ? el("table", { class: "grid", id: "jobs" },
        el("thead", null, el("tr", null, el("th", null, "Started"), el("th", null, "What"), el("th", null, "Destination"), el("th", null, "Progress"))),
        el("tbody", null, rows)) : el("div", { class: "empty" }, "No restores yet. Open a folder or a file and press Restore…")))) return;
    if (data.items.some((j) => j.finished === null)) {
      setTimeout(() => { if (K.current(token)) K.pages.restores(query, token).catch(() => {}); }, 1000);
    }
  };
})();
