// The status page: renders the JSON of `GET status` and polls it, without reloading the page.
// No library and no request outside this origin: plots are plain SVG.
"use strict";
(function () {
  const POLL_MS = 2000;
  const STALE_MS = 3 * POLL_MS + 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const root = document.getElementById("app");
  let lastGood = 0;        // Date.now() of the last status that arrived
  let lastData = null;
  let page = Number(new URLSearchParams(location.search).get("page") || "1") || 1;
  let inFlight = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }
  function bytes(n) {
    if (n === null || n === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = n, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(value < 10 ? 2 : 1) : String(value)) + " " + units[unit];
  }
  function num(n, digits) {
    if (n === null || n === undefined) return "-";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }
  function duration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.max(0, s);
    if (s < 1) return s.toFixed(3) + " s";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const parts = [];
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) parts.push(d + " d");
    if (h) parts.push(h + " h");
    if (m) parts.push(m + " min");
    if (!d) parts.push(Math.floor(s % 60) + " s");
    return parts.join(" ");
  }
  function megabytes(n) {
    const mb = n / 1e6;
    return mb >= 10 ? mb.toFixed(1) : mb >= 0.1 ? mb.toFixed(2) : mb.toFixed(4);
  }
  // "2026-12-03T03:19:07.470249Z" shown as "2026-12-03 03:19:07Z".
  function when(iso) { return iso ? String(iso).replace("T", " ").replace(/\.\d+Z$/, "Z") : "?"; }
  function pause(s) { return s > 0 ? duration(s) : "0 s"; }
  function gps(t) { return t === null || t === undefined ? "-" : Number(t).toFixed(3); }

  function card(label, value, sub, extra) {
    return el("div", { class: "card" + (extra ? " " + extra : "") },
      el("div", { class: "label" }, label), el("div", { class: "value", "data-field": label }, value),
      sub ? el("div", { class: "sub" }, sub) : null);
  }

  function fillBar(fill) {
    const pct = Math.min(100, Math.max(0, fill * 100));
    return svg("svg", { class: "bar" + (fill >= 1 ? " full" : ""), viewBox: "0 0 100 4",
      preserveAspectRatio: "none", role: "img", "aria-label": "fill " + pct.toFixed(1) + "%" },
      svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 4 }),
      svg("rect", { class: "fill", x: 0, y: 0, width: pct.toFixed(2), height: 4 }));
  }

  function timeline(ch) {
    const start = ch.start, end = ch.end;
    const width = 1000, node = svg("svg", { class: "timeline", viewBox: "0 0 1000 30",
      preserveAspectRatio: "none", role: "img",
      "aria-label": "coverage of " + ch.channel + ": " + ch.gap_count + " gaps" });
    if (start === null || end === null || !(end > start)) return node;
    const lo = Math.min(start, ...ch.refused_spans.map((r) => r[0]));
    const hi = Math.max(end, ...ch.refused_spans.map((r) => r[1]));
    const x = (t) => ((t - lo) / (hi - lo)) * width;
    node.append(svg("rect", { class: "covered", x: x(start), y: 6, width: x(end) - x(start), height: 14 }));
    for (const [a, b] of ch.gaps) {
      // A gap stays visible however short: at least 2 units of 1000 wide.
      const w = Math.max(2, x(b) - x(a));
      node.append(svg("rect", { class: "gap", x: x(a), y: 6, width: w, height: 14, "data-gap": a + "-" + b },
        svg("title", {}, document.createTextNode("gap " + gps(a) + " - " + gps(b) + " (" + duration(b - a) + ")"))));
    }
    for (const [a, b] of ch.refused_spans) {
      node.append(svg("rect", { class: "refused", x: x(a), y: 21, width: Math.max(2, x(b) - x(a)), height: 7 },
        svg("title", {}, document.createTextNode("refused overlap " + gps(a) + " - " + gps(b)))));
    }
    return node;
  }

  function strainPlot(recent) {
    const n = recent.min.length, node = svg("svg", { class: "plot", viewBox: "0 0 400 100",
      preserveAspectRatio: "none", role: "img", "aria-label": "recent strain" });
    let lo = Math.min(...recent.min), hi = Math.max(...recent.max);
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const x = (i) => (n === 1 ? 200 : (i / (n - 1)) * 400);
    const y = (v) => 95 - ((v - lo) / (hi - lo)) * 90;
    const top = recent.max.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(2));
    const bottom = recent.min.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(2)).reverse();
    node.append(svg("polygon", { class: "band", points: top.concat(bottom).join(" ") }));
    node.append(svg("polyline", { class: "trace", points: top.join(" ") }));
    node.append(svg("rect", { class: "frame", x: 0, y: 0, width: 400, height: 100 }));
    return node;
  }

  function spectrumPlot(asd) {
    const node = svg("svg", { class: "plot", viewBox: "0 0 400 100", preserveAspectRatio: "none",
      role: "img", "aria-label": "amplitude spectral density" });
    const pts = asd.f.map((f, i) => [f, asd.asd[i]]).filter((p) => p[0] > 0 && p[1] > 0);
    if (pts.length < 2) return node;
    const lf = pts.map((p) => Math.log10(p[0])), la = pts.map((p) => Math.log10(p[1]));
    const f0 = Math.min(...lf), f1 = Math.max(...lf);
    let a0 = Math.min(...la), a1 = Math.max(...la);
    if (!(a1 > a0)) { a0 -= 1; a1 += 1; }
    const points = lf.map((f, i) => (((f - f0) / (f1 - f0 || 1)) * 400).toFixed(1) + "," +
      (95 - ((la[i] - a0) / (a1 - a0)) * 90).toFixed(2));
    node.append(svg("polyline", { class: "trace", points: points.join(" ") }));
    node.append(svg("rect", { class: "frame", x: 0, y: 0, width: 400, height: 100 }));
    return node;
  }

  function channelBlock(ch) {
    const span = ch.start === null ? "-" : gps(ch.start) + " - " + gps(ch.end) + " (" + duration(ch.end - ch.start) + ")";
    const block = el("div", { class: "channel", "data-channel": ch.channel },
      el("h3", {}, ch.channel),
      el("div", { class: "facts" },
        el("span", {}, "GPS ", el("b", {}, span)),
        el("span", {}, "rate ", el("b", {}, ch.sample_rate ? num(ch.sample_rate, 3) + " Hz" : "-")),
        el("span", {}, "chunks ", el("b", { "data-field": "channel-chunks" }, num(ch.n_itm))),
        el("span", {}, "bytes ", el("b", {}, bytes(ch.bytes))),
        el("span", {}, "gaps ", el("b", { "data-field": "channel-gaps" }, num(ch.gap_count)),
          ch.gap_count ? " (" + duration(ch.gap_s) + ")" : ""),
        el("span", {}, "refused overlaps ", el("b", {}, num(ch.refused)))),
      timeline(ch),
      el("div", { class: "legend" }, el("span", {}, el("i", { class: "c" }), "stored"),
        el("span", {}, el("i", { class: "g" }), "gap" + (ch.gap_count > ch.gaps.length ? " (longest " + ch.gaps.length + " of " + ch.gap_count + " drawn)" : "")),
        el("span", {}, el("i", { class: "r" }), "refused overlap")));
    if (ch.recent) {
      const r = ch.recent;
      const plots = el("div", { class: "plots" },
        el("div", {}, el("div", { class: "plot-title" }, "newest chunk: " + num(r.n) + " samples from GPS " + gps(r.t0)), strainPlot(r)));
      if (r.asd) plots.append(el("div", {}, el("div", { class: "plot-title" }, "its amplitude spectral density (log-log, " +
        num(r.asd.f[0], 1) + " - " + num(r.asd.f[r.asd.f.length - 1], 0) + " Hz)"), spectrumPlot(r.asd)));
      block.append(plots);
    }
    return block;
  }

  function sealedCard(q) {
    if (q.mode !== "rotate" && !q.count) {
      return card("sealed", "hold mode", "a full batch freezes until it is flushed", "sealed");
    }
    const value = num(q.count) + (q.max_sealed ? " of " + num(q.max_sealed) : "");
    const sub = q.count ? "waiting for training; the oldest for " + duration(q.oldest_waiting_s)
      : "no batch waits for training";
    return card("sealed", value, sub, q.full ? "warn" : "");
  }

  function pauseCard(p) {
    const value = p.paused ? "paused " + duration(p.current_seconds) : "none now";
    const recent = p.batches.slice(0, 4).map((b) => "#" + b.batch + " " + pause(b.seconds));
    return card("ingest pause", value, "total " + pause(p.total_seconds) +
      (recent.length ? "; per batch " + recent.join(", ") : ""), p.paused ? "warn" : "");
  }

  function sealedTable(q) {
    if (!q.items.length) return el("p", { class: "empty" }, "No sealed batch waits for training.");
    const rows = q.items.map((b) => el("tr", { "data-batch": b.batch },
      el("td", { class: "num" }, b.batch), el("td", {}, el("code", {}, b.archive)),
      el("td", { class: "num" }, num(b.n_f)), el("td", { class: "num" }, bytes(b.bt_wrt)),
      el("td", {}, when(b.sealed_at)), el("td", { class: "num", "data-field": "waiting" }, duration(b.waiting_s)),
      el("td", { class: "num" }, pause(b.pause_seconds))));
    return el("div", { class: "table-wrap" }, el("table", { id: "sealed" },
      el("thead", {}, el("tr", {}, ["batch", "archive (reserved)", "chunks", "size", "sealed at", "waiting",
        "ingest pause while filled"].map((h, i) => el("th", { class: [0, 2, 3, 5, 6].includes(i) ? "num" : "" }, h)))),
      el("tbody", {}, rows)));
  }

  function storeFacts(s) {
    const facts = el("div", { class: "facts", id: "store", "data-reachable": String(s.reachable) },
      el("span", {}, el("code", {}, s.store)),
      el("span", { class: s.reachable ? "ok" : "bad" }, el("b", {}, s.reachable ? "reachable" : "unreachable"),
        s.reachable ? "" : " since " + when(s.unreachable_since)),
      el("span", {}, "pending uploads ", el("b", { "data-field": "pending-uploads" }, num(s.pending))),
      el("span", {}, "local copies ", el("b", {}, s.keep_local ? "kept" : "removed once verified")));
    if (s.last_error) {
      facts.append(el("span", {}, "last error ", el("b", { class: "bad" }, s.last_error),
        s.last_error_at ? " at " + when(s.last_error_at) : ""));
    }
    return facts;
  }

  function uploadNote(u) {
    if (!u) return null;
    const text = {
      uploaded: "uploaded, verified " + when(u.verified_at) + (u.local_copy ? " (local copy kept)" : ""),
      pending: "upload pending",
      uploading: "uploading",
      retrying: "upload retrying" + (u.attempts ? " (" + u.attempts + (u.attempts === 1 ? " try)" : " tries)") : ""),
      failed: "upload failed, kept local",
    }[u.state] || u.state;
    // The error in full on hover; the object store section says it too.
    return el("div", { class: "upload " + u.state, "data-upload": u.state, title: u.error || u.location }, text);
  }

  function archivesTable(archives) {
    if (!archives.items.length) return el("p", { class: "empty" }, "No batch archived yet.");
    const rows = archives.items.map((a) => el("tr", {},
      el("td", { class: "num" }, a.batch ?? "-"),
      el("td", {}, el("code", {}, a.archive || "-"), uploadNote(a.upload)),
      el("td", { class: "num" }, num(a.n_itm)), el("td", { class: "num" }, bytes(a.bytes)),
      el("td", {}, Object.entries(a.channels || {}).map(([name, c]) =>
        el("div", {}, name + ": " + gps(c.start) + " - " + gps(c.end) + (c.gaps ? " (" + c.gaps + " gaps)" : "")))),
      el("td", {}, a.flushed_at || "-"),
      el("td", {}, a.error ? a.error : Object.keys(a.results || {}).length ? JSON.stringify(a.results) : "-")));
    return el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["batch", "archive", "chunks", "size", "channels (GPS span)", "archived at", "results"]
        .map((h, i) => el("th", { class: i === 0 || i === 2 || i === 3 ? "num" : "" }, h)))),
      el("tbody", {}, rows)));
  }

  function chunksTable(chunks) {
    const pager = el("div", { class: "pager" });
    const link = (p, text) => {
      const a = el("a", { href: "?page=" + p, "data-page": p }, text);
      a.addEventListener("click", (event) => { event.preventDefault(); goTo(p); });
      return a;
    };
    if (chunks.page > 1) pager.append(link(chunks.page - 1, "previous"));
    pager.append(el("span", { "data-field": "pages" }, "page " + chunks.page + " of " + chunks.pages));
    if (chunks.page < chunks.pages) pager.append(link(chunks.page + 1, "next"));
    if (!chunks.items.length) return [el("p", { class: "empty" }, "The buffer is empty."), pager];
    const rows = chunks.items.map((c) => el("tr", {},
      el("td", {}, el("code", {}, c.channel)), el("td", { class: "num" }, gps(c.t0)),
      el("td", { class: "num" }, num(c.n)), el("td", { class: "num" }, num(1 / c.dt, 3)),
      el("td", { class: "num" }, duration(c.n * c.dt)), el("td", { class: "num" }, bytes(c.bytes))));
    return [el("div", { class: "table-wrap" }, el("table", { id: "chunks" },
      el("thead", {}, el("tr", {}, el("th", {}, "channel"), el("th", { class: "num" }, "GPS start"),
        el("th", { class: "num" }, "samples"), el("th", { class: "num" }, "rate (Hz)"),
        el("th", { class: "num" }, "duration"), el("th", { class: "num" }, "size"))),
      el("tbody", {}, rows))), pager];
  }

  function render(d) {
    const fill = d.fill;
    const frozen = d.frozen;
    const children = [];
    document.title = "Glitchflow datastore: " + d.state;
    document.getElementById("state").textContent = d.state;
    document.getElementById("state").className = "badge " + d.state;
    if (frozen) {
      children.push(el("div", { class: "banner frozen", id: "frozen-hint" },
        el("b", {}, "Frozen for " + duration(frozen.for_s)), " (since " + (frozen.at || "?") + ", " +
        (frozen.reason || "no reason recorded") + (frozen.by ? ", by " + frozen.by : "") + "). ", frozen.hint));
    }
    const store = d.archive_store;
    if (store && !store.reachable) {
      children.push(el("div", { class: "banner error", id: "store-problem", role: "alert" },
        el("b", {}, "Object store unreachable"), " since " + when(store.unreachable_since) + " (" +
        store.store + "): " + store.error + ". " + num(store.pending) +
        (store.pending === 1 ? " archived batch waits" : " archived batches wait") +
        " in the local folder, uploaded once it answers; ingest and flushes go on."));
    }
    const rate = d.rate;
    children.push(el("div", { class: "cards" },
      el("div", { class: "card wide" }, el("div", { class: "label" }, "fill towards MAX_SIZE"),
        el("div", { class: "value", "data-field": "fill" }, (fill * 100).toFixed(1) + " %"), fillBar(fill),
        el("div", { class: "sub" }, bytes(d.buff_size) + " of " + bytes(d.max_size) + " (" + num(d.buff_size) + " of " + num(d.max_size) + " bytes)")),
      card("batch", d.batch, d.batch_started ? "started " + d.batch_started : "no chunk yet"),
      card("chunks", num(d.n_itm), "stored in this batch", "n-itm"),
      card("bytes", num(d.buff_size), bytes(d.buff_size)),
      card("ingest", num(rate.chunks_per_s, 2) + " chunks/s",
        megabytes(rate.bytes_per_s) + " MB/s, " + num(rate.realtime, 2) + " × real time (last " + rate.window_s + " s)"),
      sealedCard(d.sealed), pauseCard(d.ingest_pause)));
    children.push(el("h2", {}, "Channels (" + d.channels.length + ")"));
    if (!d.channels.length) children.push(el("p", { class: "empty" }, "No channel has data in this batch."));
    for (const ch of d.channels) children.push(channelBlock(ch));
    if (d.sealed.mode === "rotate" || d.sealed.count) {
      children.push(el("h2", {}, "Sealed batches waiting for training (" + d.sealed.count +
        (d.sealed.max_sealed ? " of MAX_SEALED " + d.sealed.max_sealed : "") + ")"), sealedTable(d.sealed));
    }
    if (store) children.push(el("h2", {}, "Object store"), storeFacts(store));
    children.push(el("h2", {}, "Archived batches (" + d.archives.total + ")"), archivesTable(d.archives));
    children.push(el("h2", {}, "Stored chunks (" + num(d.chunks.total) + ")"), ...chunksTable(d.chunks));
    root.replaceChildren(...children);
  }

  function showProblem(text) {
    const box = document.getElementById("problem");
    box.textContent = text;
    box.classList.toggle("hidden", !text);
  }

  function tick() {
    const age = lastGood ? Date.now() - lastGood : null;
    const updated = document.getElementById("updated");
    updated.textContent = age === null ? "no data yet" : "updated " + Math.round(age / 1000) + " s ago";
    document.getElementById("stale").classList.toggle("hidden", age === null || age < STALE_MS);
    document.getElementById("stale").textContent = age === null ? "" :
      "The data below is stale: last update " + Math.round(age / 1000) + " s ago.";
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    try {
      const answer = await fetch("status?page=" + page, { cache: "no-store", headers: { Accept: "application/json" } });
      let doc = null;
      try { doc = await answer.json(); } catch (e) { doc = null; }
      if (answer.status === 404 && doc && doc.pages) {
        // The list shrank (a flush): show its last page instead.
        goTo(doc.pages);
        return;
      }
      if (!answer.ok || !doc || !doc.chunks) {
        const what = doc && doc.resp ? doc.resp + (doc.upstream ? " (" + doc.upstream + ")" : "") +
          (doc.detail ? ": " + (typeof doc.detail === "string" ? doc.detail : JSON.stringify(doc.detail)) : "") : "HTTP " + answer.status;
        showProblem("Upstream down or failing: " + what);
        return;
      }
      showProblem("");
      lastGood = Date.now();
      lastData = doc;
      render(doc);
    } catch (e) {
      showProblem("The status service does not answer (" + e.message + ").");
    } finally {
      inFlight = false;
      tick();
    }
  }

  function goTo(p) {
    page = Math.max(1, p);
    history.replaceState(null, "", "?page=" + page);
    poll();
  }

  const initial = JSON.parse(document.getElementById("initial").textContent);
  if (initial && initial.chunks) {
    lastGood = Date.now();
    lastData = initial;
    if (initial.chunks.page !== page) history.replaceState(null, "", "?page=" + initial.chunks.page);
    page = initial.chunks.page;
    render(initial);
  } else if (initial && initial.resp) {
    showProblem("Upstream down or failing: " + initial.resp + (initial.detail ? ": " + JSON.stringify(initial.detail) : ""));
  }
  tick();
  setInterval(poll, POLL_MS);
  setInterval(tick, 1000);
})();
