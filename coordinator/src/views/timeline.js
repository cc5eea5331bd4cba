// The job's timeline: every attempt of every task as a bar on its worker's row, from
// its start to its end (seconds since the job started), coloured by how it ended.
// Drawn on one canvas, bucketed by colour, so 100,000 bars take tens of milliseconds.
// Shared by the status page (fed the attempts that changed, every second) and the
// job's HTML history (fed the report's attempts once): one drawing, two pages.
//
// Usage: const tl = mrTimeline(element); tl.upsert(attempts); tl.draw(endSecs);
// `element` holds a <canvas>, a `.tl-legend` and a `.tl-tip`. The canvas carries what
// it drew for tests and tools: data-bars, data-rows, data-outcomes (JSON counts).
"use strict";

const MR_OUTCOMES = ["done", "running", "failed", "revoked", "lost", "refused", "beaten"];
const MR_OUTCOME_COLORS = {
  done: "#1f9d55", running: "#2e6be6", failed: "#d13b3b", revoked: "#c27c0e",
  lost: "#7c3aed", refused: "#db2777", beaten: "#98a2b3",
};
const MR_OUTCOME_HELP = {
  done: "its report was accepted", running: "still running",
  failed: "it reported a failure", revoked: "taken back: it ran past the task timeout",
  lost: "taken back: its worker missed its heartbeats",
  refused: "taken back, then its late report was refused",
  beaten: "another attempt of its task finished first",
};

/** Orders worker ids `w3`, `w3.r1` by restart, then number. */
function mrWorkerKey(id) {
  const m = /^w(\d+)(?:\.r(\d+))?$/.exec(String(id));
  return m ? [Number(m[2] || 0), Number(m[1])] : [Infinity, String(id)];
}

function mrCompareWorkers(a, b) {
  const x = mrWorkerKey(a), y = mrWorkerKey(b);
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] === y[1]) return 0;
  return x[1] < y[1] ? -1 : 1;
}

/** A step of about a tenth of `span` seconds, rounded to 1, 2 or 5 times a power of 10. */
function mrNiceStep(span) {
  const raw = Math.max(span, 1e-3) / 8;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function mrSecs(s) {
  if (s == null) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s";
  return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
}

function mrTimeline(root) {
  const canvas = root.querySelector("canvas");
  const legend = root.querySelector(".tl-legend");
  const tip = root.querySelector(".tl-tip");
  const byId = new Map();      // id -> attempt
  const hosts = new Map();     // worker id -> host
  let marks = [];              // [{at, label}]
  let layout = null;           // what the last draw placed where, for the tooltip
  let lastEnd = 0;

  function upsert(list) {
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      byId.set(a.id != null ? a.id : byId.size, a);
    }
  }

  function draw(endSecs) {
    lastEnd = endSecs;
    const attempts = Array.from(byId.values());
    let end = Math.max(endSecs || 0, 1e-3);
    for (const a of attempts) end = Math.max(end, a.end || 0, a.start || 0);
    const workers = Array.from(new Set(attempts.map((a) => a.worker))).sort(mrCompareWorkers);
    const rowOf = new Map(workers.map((w, i) => [w, i]));
    const width = Math.max(320, root.clientWidth || 900);
    const rowH = Math.max(3, Math.min(18, Math.floor(480 / Math.max(1, workers.length))));
    const labelW = rowH >= 9 ? 92 : 8;
    const top = 4, axisH = 22;
    const height = top + Math.max(1, workers.length) * rowH + axisH;
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const plotW = width - labelW - 8;
    const x = (t) => labelW + (Math.max(0, t) / end) * plotW;

    // Rows and the time axis.
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let r = 0; r < workers.length; r++) {
      if (r % 2 === 1) {
        ctx.fillStyle = "#f4f5f7";
        ctx.fillRect(labelW, top + r * rowH, plotW, rowH);
      }
      if (labelW > 8) {
        ctx.fillStyle = "#475467";
        const host = hosts.get(workers[r]);
        ctx.fillText(workers[r] + (host ? " " + host : ""), 4, top + r * rowH + rowH / 2, labelW - 8);
      }
    }
    const step = mrNiceStep(end);
    const axisY = top + workers.length * rowH;
    ctx.strokeStyle = "#e4e7ec";
    ctx.fillStyle = "#667085";
    ctx.textBaseline = "top";
    for (let t = 0; t <= end + 1e-9; t += step) {
      const px = Math.round(x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, axisY + 4); ctx.stroke();
      const label = (step < 1 ? t.toFixed(step < 0.1 ? 2 : 1) : String(Math.round(t))) + " s";
      ctx.fillText(label, Math.min(px + 2, width - 30), axisY + 6);
    }

    // The bars, one colour at a time.
    const buckets = {};
    for (const o of MR_OUTCOMES) buckets[o] = [];
    const rows = workers.map(() => []);
    for (const a of attempts) {
      (buckets[a.outcome] || (buckets[a.outcome] = [])).push(a);
      const r = rowOf.get(a.worker);
      if (r !== undefined) rows[r].push(a);
    }
    const counts = {};
    let bars = 0;
    const gap = rowH >= 6 ? 1 : 0;
    for (const outcome of Object.keys(buckets)) {
      const list = buckets[outcome];
      if (!list.length) continue;
      counts[outcome] = list.length;
      ctx.fillStyle = MR_OUTCOME_COLORS[outcome] || "#344054";
      for (const a of list) {
        const x0 = x(a.start), x1 = x(a.end == null ? end : a.end);
        // A pixel of air after a bar wide enough to spare it: back-to-back attempts
        // on one worker stay apart.
        const w = x1 - x0 >= 3 ? x1 - x0 - 1 : Math.max(1, x1 - x0);
        ctx.fillRect(x0, top + rowOf.get(a.worker) * rowH + gap, w, rowH - 2 * gap);
        bars++;
      }
    }
    // Backups: a dark line along the top of the bar.
    ctx.fillStyle = "rgba(16, 24, 40, 0.55)";
    for (const a of attempts) {
      if (!a.backup) continue;
      const x0 = x(a.start), x1 = x(a.end == null ? end : a.end);
      ctx.fillRect(x0, top + rowOf.get(a.worker) * rowH + gap, Math.max(1, x1 - x0), Math.max(1, rowH / 5));
    }
    // Task names on the bars wide enough to hold them (not on 100,000 of them: a
    // label is a text measure and a draw).
    if (rowH >= 12 && bars <= 3000) {
      ctx.font = "10px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      for (const a of attempts) {
        const x0 = x(a.start), x1 = x(a.end == null ? end : a.end);
        if (x1 - x0 < 36) continue;
        const label = a.attempt > 1 ? a.task + " #" + a.attempt : a.task;
        if (ctx.measureText(label).width > x1 - x0 - 8) continue;
        ctx.fillStyle = a.outcome === "beaten" ? "#1d2430" : "#fff";
        ctx.fillText(label, x0 + 4, top + rowOf.get(a.worker) * rowH + rowH / 2);
      }
    }
    // Phase marks (the report's: maps done, the end).
    ctx.strokeStyle = "#1d2430";
    ctx.setLineDash([3, 3]);
    ctx.fillStyle = "#1d2430";
    ctx.textBaseline = "top";
    for (const m of marks) {
      if (m.at == null) continue;
      const px = Math.round(x(m.at)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, axisY); ctx.stroke();
    }
    ctx.setLineDash([]);

    layout = { x, end, labelW, plotW, top, rowH, rows, workers };
    canvas.dataset.bars = String(bars);
    canvas.dataset.rows = String(workers.length);
    canvas.dataset.outcomes = JSON.stringify(counts);
    if (legend) {
      const out = document.createDocumentFragment();
      for (const o of MR_OUTCOMES) {
        if (!counts[o] && o !== "done" && o !== "running") continue;
        const item = document.createElement("span");
        item.className = "tl-key";
        item.title = MR_OUTCOME_HELP[o];
        const sw = document.createElement("i");
        sw.style.background = MR_OUTCOME_COLORS[o];
        item.appendChild(sw);
        item.appendChild(document.createTextNode(o + " " + (counts[o] || 0)));
        out.appendChild(item);
      }
      const note = document.createElement("span");
      note.className = "tl-note";
      note.textContent = bars + " attempts on " + workers.length + " workers over " + mrSecs(end)
        + (marks.length ? "; dashed: " + marks.map((m) => m.label).join(", ") : "");
      out.appendChild(note);
      legend.replaceChildren(out);
    }
  }

  function hover(ev) {
    if (!layout || !tip) return;
    const rect = canvas.getBoundingClientRect();
    const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
    const r = Math.floor((py - layout.top) / layout.rowH);
    const row = layout.rows[r];
    let hit = null;
    if (row && px >= layout.labelW) {
      for (const a of row) {
        const x0 = layout.x(a.start), x1 = layout.x(a.end == null ? layout.end : a.end);
        if (px >= x0 - 2 && px <= Math.max(x1, x0 + 1) + 2) hit = a;
      }
    }
    if (!hit) { tip.hidden = true; return; }
    const took = (hit.end == null ? layout.end : hit.end) - hit.start;
    tip.textContent = hit.task + " attempt " + hit.attempt + " on " + hit.worker + ": " + hit.outcome
      + (hit.failure ? " (" + hit.failure + ")" : "") + (hit.backup ? ", a backup" : "")
      + " · " + mrSecs(hit.start) + " → " + (hit.end == null ? "now" : mrSecs(hit.end))
      + " (" + mrSecs(took) + ")";
    tip.hidden = false;
    tip.style.left = Math.min(px + 12, rect.width - 260) + "px";
    tip.style.top = (py + 14) + "px";
  }
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", () => { if (tip) tip.hidden = true; });
  window.addEventListener("resize", () => draw(lastEnd));

  return {
    upsert,
    draw,
    size: () => byId.size,
    setHosts(list) { for (const w of list || []) if (w && w.id) hosts.set(w.id, w.host); },
    setMarks(list) { marks = list || []; },
  };
}
