/* parallux report: draws the run embedded in <script id="parallux-data"> (see docs/reference.md).
 *
 * The timeline is drawn by hand on one canvas: 100,000 bars are 100,000 rect() calls batched into one fill
 * per status, a few tens of milliseconds a frame, where one DOM node (or SVG element) per bar would not be
 * usable. uPlot (vendored, MIT) draws the charts over time and the histogram. Nothing here fetches anything.
 * Text from the run (names, commands, stderr) is only ever set as textContent, never parsed as HTML.
 */
(function () {
  "use strict";

  var STATUS_COLORS = {
    ok: "#2e9e5b", failed: "#d64545", timeout: "#e8912d", oom: "#a93226", error: "#8e44ad",
    cancelled: "#9aa3ad", running: "#3b7dd8", queued: "#c7ccd1", planned: "#c7ccd1"
  };
  var RUNNER_COLORS = ["#3b7dd8", "#2e9e5b", "#e8912d", "#8e44ad", "#d64545", "#1aa6b7", "#b7950b", "#6c5ce7"];
  var hook = window.__parallux_report = {
    ready: false, attempts: 0, bars_drawn: 0, draws: 0, lanes: 0, render_ms: null, errors: [], aggregated: null
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) { for (var key in attrs) { node.setAttribute(key, attrs[key]); } }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function colorOf(status) { return STATUS_COLORS[status] || "#555"; }

  // -- formatting ------------------------------------------------------------------------------------------

  function fmtSeconds(s) {
    if (s === null || s === undefined || !isFinite(s)) { return "-"; }
    if (s === 0) { return "0"; }
    var neg = s < 0 ? "-" : "";
    s = Math.abs(s);
    if (s < 0.001) { return neg + (s * 1e6).toFixed(0) + " µs"; }
    if (s < 1) { return neg + (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms"; }
    if (s < 10) { return neg + s.toFixed(3) + " s"; }
    if (s < 60) { return neg + s.toFixed(1) + " s"; }
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) { return neg + m + "m" + (sec < 10 ? "0" : "") + sec + "s"; }
    var h = Math.floor(m / 60), min = m % 60;
    return neg + h + "h" + (min < 10 ? "0" : "") + min + "m";
  }

  function fmtKib(kb) {
    if (kb === null || kb === undefined) { return "-"; }
    if (kb < 1024) { return kb + " KiB"; }
    if (kb < 1024 * 1024) { return (kb / 1024).toFixed(1) + " MiB"; }
    return (kb / 1024 / 1024).toFixed(2) + " GiB";
  }

  function fmtDate(epoch) {
    if (epoch === null || epoch === undefined) { return "-"; }
    var d = new Date(epoch * 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) +
      ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function compressCores(cores) {
    if (!cores || !cores.length) { return "-"; }
    var sorted = cores.slice().sort(function (a, b) { return a - b; });
    var parts = [], first = sorted[0], prev = sorted[0];
    for (var i = 1; i <= sorted.length; i++) {
      var c = sorted[i];
      if (c === prev + 1) { prev = c; continue; }
      parts.push(first === prev ? String(first) : first + "-" + prev);
      first = prev = c;
    }
    return parts.join(",");
  }

  function niceStep(span, target) {
    var raw = span / Math.max(1, target);
    var steps = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
                 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    for (var i = 0; i < steps.length; i++) { if (steps[i] >= raw) { return steps[i]; } }
    return Math.ceil(raw / 86400) * 86400;
  }

  // -- the data, as columns ----------------------------------------------------------------------------------

  function table(block) {
    var out = { length: block.rows.length };
    block.fields.forEach(function (name, index) {
      var column = new Array(block.rows.length);
      for (var i = 0; i < block.rows.length; i++) { column[i] = block.rows[i][index]; }
      out[name] = column;
    });
    return out;
  }

  function load() {
    var data = JSON.parse($("parallux-data").textContent);
    var commands = table(data.commands), attempts = table(data.attempts);
    // Times (since data.origin) and durations are integer microseconds; the drawing works in seconds.
    attempts.start = seconds(attempts.start_us);
    attempts.end = seconds(attempts.end_us);
    attempts.user_seconds = seconds(attempts.user_us);
    attempts.system_seconds = seconds(attempts.system_us);
    commands.queued = seconds(commands.queued_us);
    commands.finished = seconds(commands.finished_us);
    commands.duration = seconds(commands.duration_us);
    commands.cpu_seconds = seconds(commands.cpu_us);
    var bySeq = new Map();
    for (var i = 0; i < commands.length; i++) { bySeq.set(commands.seq[i], i); }
    return { raw: data, run: data.run, runners: data.runners, commands: commands, attempts: attempts,
             bySeq: bySeq, now: (data.now_us || 0) / 1e6 };
  }

  function seconds(column) {
    var out = new Array(column.length);
    for (var i = 0; i < column.length; i++) { out[i] = column[i] === null ? null : column[i] / 1e6; }
    return out;
  }

  // -- header -------------------------------------------------------------------------------------------------

  function header(model) {
    var run = model.run;
    var name = (run.config || "").split("/").pop() || run.run_id;
    $("title").textContent = "parallux run " + run.run_id + " · " + name;
    var state = run.state + (run.exit_status !== null && run.exit_status !== undefined ?
      ", exit status " + run.exit_status : "");
    var runners = model.runners.filter(function (r) { return r.lane_kind !== "gpu"; }).map(function (r) {
      var text = r.name + " (" + (r.host || "?") + ", " + (r.max_jobs !== undefined && r.max_jobs !== null ?
        r.max_jobs + " slots" : r.lanes.length + " lanes");
      if (r.core_pool) { text += ", cores " + compressCores(r.core_pool); }
      return text + ")";
    }).join(", ");
    var facts = [
      ["config", run.config], ["arguments", (run.argv || []).join(" ") || "(none)"],
      ["run", run.run_id], ["state", state],
      ["started", fmtDate(run.start)], ["elapsed", fmtSeconds(run.elapsed)],
      ["commands", run.commands + (run.retries ? " (" + run.retries + " retries)" : "") +
        (run.resumed ? " (" + run.resumed + " resumed)" : "")],
      ["hosts", (run.hosts || []).join(", ") || "-"],
      ["runners", runners || "-"], ["parallux", (run.parallux || "?") + " · Python " + (run.python || "?")],
      ["log", run.log], ["halted", run.halted || "no"]
    ];
    // how a run's benchmarks were ordered, and the seed of a shuffle (as text: a 64-bit seed is no JS number)
    if (model.raw.order_text) { facts.push(["order", model.raw.order_text]); }
    var agg = model.raw.aggregate;
    if (agg) {  // a run too big to draw bar by bar: say what is drawn, and that the counts are exact
      facts.push(["drawn", agg.attempts.toLocaleString("en") + " attempts of " + agg.commands.toLocaleString("en") +
        " commands, more than " + agg.detail.toLocaleString("en") + ": each lane shows how busy it was over time " +
        "(" + agg.lanes.length + " lanes × " + (agg.lanes.length ? agg.lanes[0].busy.length : 0) + " intervals, coloured by " +
        "the worst status there) under the bars of " + model.commands.length.toLocaleString("en") +
        " commands (every failure, the slowest, and commands spread over the run); the counts, the chart over " +
        "time and the durations are of every command"]);
    }
    var dl = $("facts");
    facts.forEach(function (pair) { dl.appendChild(el("dt", null, pair[0])); dl.appendChild(el("dd", null, pair[1])); });
    var counts = $("counts");
    Object.keys(run.counts || {}).sort().forEach(function (status) {
      var badge = el("span", { "class": "count" }, run.counts[status] + " " + status);
      badge.style.background = colorOf(status);
      counts.appendChild(badge);
    });
    $("footer").textContent = "Generated by parallux " + (run.parallux || "") + " on " + model.raw.generated_on +
      ". The run's records are embedded in this file as JSON: <script id=\"parallux-data\"> (format " +
      model.raw.format + " " + model.raw.version + ").";
  }

  // -- the timeline ---------------------------------------------------------------------------------------

  function Timeline(model) {
    this.model = model;
    this.canvas = $("timeline");
    this.box = $("timeline-box");
    this.tooltip = $("tooltip");
    this.gutter = 150;
    this.axis = 22;
    this.build();
    this.reset();
    this.listen();
  }

  Timeline.prototype.build = function () {
    var model = this.model, attempts = model.attempts;
    var rowOf = new Map(), byCore = new Set(), labels = [], groups = [], row = 0;
    model.runners.forEach(function (runner, r) {
      if (runner.lane_kind === "core") { byCore.add(runner.name); }
      groups.push({ name: runner.name, first: row, count: runner.lanes.length, color: RUNNER_COLORS[r % RUNNER_COLORS.length] });
      // (a runner's GPUs are a block of their own, keyed apart from its slots and cores)
      var key = runner.lane_kind === "gpu" ? "gpu\u0000" + runner.runner : runner.name;
      runner.lanes.forEach(function (lane) {
        rowOf.set(key + "\u0000" + lane, row);
        labels.push((runner.lane_kind === "core" ? "core " : runner.lane_kind === "gpu" ? "gpu " : "slot ") + lane);
        row++;
      });
    });
    this.rows = row;
    this.labels = labels;
    this.groups = groups;
    // One rect per (attempt, lane): an attempt leasing 4 cores is drawn on the 4 lanes of its cores where the
    // lanes are cores; where they are slots (a runner on several nodes, whose cores repeat from node to
    // node), on the one slot its row names.
    var rectAttempt = [], rectRow = [], primary = [];
    var tmin = 0, tmax = model.now;
    for (var i = 0; i < attempts.length; i++) {
      var start = attempts.start[i];
      if (start === null) { continue; }
      var end = attempts.end[i] === null ? model.now : attempts.end[i];
      if (start < tmin) { tmin = start; }
      if (end > tmax) { tmax = end; }
      var runner = attempts.runner[i], cores = attempts.cores[i];
      var lanes = byCore.has(runner) && cores && cores.length ? cores : [attempts.lane[i]];
      for (var j = 0; j < lanes.length; j++) {
        var target = rowOf.get(runner + "\u0000" + lanes[j]);
        if (target === undefined) { continue; }
        rectAttempt.push(i); rectRow.push(target); primary.push(j === 0 ? 1 : 0);
      }
      var gpus = attempts.gpus ? attempts.gpus[i] : null;  // and on the lane of each GPU it leased
      for (var g = 0; gpus && g < gpus.length; g++) {
        var gpuRow = rowOf.get("gpu\u0000" + runner + "\u0000" + gpus[g]);
        if (gpuRow !== undefined) { rectAttempt.push(i); rectRow.push(gpuRow); primary.push(0); }
      }
    }
    var n = rectAttempt.length;
    this.rectAttempt = Int32Array.from(rectAttempt);
    this.rectRow = Int32Array.from(rectRow);
    this.primary = Uint8Array.from(primary);
    this.start = new Float64Array(n);
    this.end = new Float64Array(n);
    var byStatus = {}, perRow = [];
    for (var r = 0; r < this.rows; r++) { perRow.push([]); }
    for (var k = 0; k < n; k++) {
      var a = this.rectAttempt[k];
      this.start[k] = attempts.start[a];
      this.end[k] = attempts.end[a] === null ? model.now : attempts.end[a];
      var status = attempts.status[a];
      (byStatus[status] = byStatus[status] || []).push(k);
      perRow[this.rectRow[k]].push(k);
    }
    var self = this;
    perRow.forEach(function (list) { list.sort(function (x, y) { return self.start[x] - self.start[y]; }); });
    this.perRow = perRow.map(function (list) { return Int32Array.from(list); });
    // Failures are drawn last, on top: a red bar one pixel wide must not hide under a green one.
    var order = ["ok", "cancelled", "queued", "running", "timeout", "error", "oom", "failed"];
    function rank(status) { var r = order.indexOf(status); return r < 0 ? order.length : r; }
    this.byStatus = Object.keys(byStatus).sort(function (a, b) { return rank(a) - rank(b); }).map(function (s) {
      return { status: s, rects: Int32Array.from(byStatus[s]) };
    });
    var agg = model.raw.aggregate;
    this.strips = [];
    if (agg) {  // every lane's occupancy (its bins), drawn under the sampled bars
      agg.lanes.forEach(function (lane) {
        var target = rowOf.get(lane.runner + "\u0000" + lane.lane);
        if (target !== undefined) { self.strips.push({ row: target, busy: lane.busy, worst: lane.worst }); }
      });
      this.binWidth = (agg.t1 - agg.t0) / Math.max(1, agg.lanes.length ? agg.lanes[0].busy.length : 1);
      this.binStart = agg.t0;
      tmin = Math.min(tmin, agg.t0);
      tmax = Math.max(tmax, agg.t1);
      hook.aggregated = { attempts: agg.attempts, commands: agg.commands, bars: attempts.length,
                          lanes: this.strips.length, detail: agg.detail };
    }
    this.tmin = tmin;
    this.tmax = Math.max(tmax, tmin + 1e-3);
    hook.attempts = attempts.length;
    hook.rects = n;
    hook.lanes = this.rows;
  };

  Timeline.prototype.reset = function () {
    var pad = (this.tmax - this.tmin) * 0.01;
    this.t0 = this.tmin - pad;
    this.t1 = this.tmax + pad;
    this.resize();
  };

  Timeline.prototype.resize = function () {
    var width = Math.max(400, this.box.clientWidth);
    this.rowH = Math.max(2, Math.min(18, Math.floor(520 / Math.max(1, this.rows))));
    var height = this.axis + this.rows * this.rowH + 4;
    var ratio = window.devicePixelRatio || 1;
    this.width = width;
    this.height = height;
    this.canvas.style.width = width + "px";
    this.canvas.style.height = height + "px";
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.ratio = ratio;
    this.draw();
  };

  Timeline.prototype.scale = function () { return (this.width - this.gutter - 8) / (this.t1 - this.t0); };

  Timeline.prototype.draw = function () {
    var ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    var scale = this.scale(), t0 = this.t0, t1 = this.t1, left = this.gutter, top = this.axis, h = this.rowH;
    var self = this;
    // Lane groups: a light band per runner, a line between runners.
    this.groups.forEach(function (group, index) {
      ctx.fillStyle = index % 2 ? "#f6f8fa" : "#fdfdfe";
      ctx.fillRect(left, top + group.first * h, self.width - left, group.count * h);
    });
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, this.width - left, this.rows * h);
    ctx.clip();
    var pad = h >= 6 ? 1 : 0, drawn = 0;
    this.drawStrips(ctx, scale, left, top, h);
    for (var s = 0; s < this.byStatus.length; s++) {
      var rects = this.byStatus[s].rects;
      ctx.fillStyle = colorOf(this.byStatus[s].status);
      ctx.beginPath();
      for (var i = 0; i < rects.length; i++) {
        var k = rects[i], start = this.start[k], end = this.end[k];
        if (end < t0 || start > t1) { continue; }
        var x = left + (start - t0) * scale, w = (end - start) * scale;
        // A gap of a pixel between bars wide enough to afford it: back-to-back commands stay apart.
        ctx.rect(x, top + this.rectRow[k] * h + pad, w < 1 ? 1 : w > 4 ? w - 1 : w, h - 2 * pad);
        drawn += this.primary[k];
      }
      ctx.fill();
    }
    ctx.restore();
    this.drawAxis(ctx, scale);
    this.drawLabels(ctx);
    hook.bars_drawn = drawn;
    hook.draws++;
  };

  Timeline.prototype.drawStrips = function (ctx, scale, left, top, h) {  // an aggregated run's lanes
    var width = this.binWidth, first = this.binStart, t0 = this.t0, t1 = this.t1;
    for (var s = 0; s < this.strips.length; s++) {
      var strip = this.strips[s];
      for (var b = 0; b < strip.busy.length; b++) {
        var from = first + b * width;
        if (!strip.busy[b] || from > t1 || from + width < t0) { continue; }
        ctx.globalAlpha = 0.2 + 0.5 * strip.busy[b] / 100;
        ctx.fillStyle = colorOf(strip.worst[b] || "ok");
        ctx.fillRect(left + (from - t0) * scale, top + strip.row * h, Math.max(1, width * scale), h);
      }
    }
    ctx.globalAlpha = 1;
  };

  Timeline.prototype.drawAxis = function (ctx, scale) {
    var left = this.gutter, step = niceStep(this.t1 - this.t0, (this.width - left) / 90);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, this.width, this.axis);
    ctx.strokeStyle = "rgba(0,0,0,.08)";
    ctx.fillStyle = "#5d6873";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.beginPath();
    for (var t = Math.ceil(this.t0 / step) * step; t <= this.t1; t += step) {
      var x = Math.round(left + (t - this.t0) * scale) + 0.5;
      ctx.moveTo(x, this.axis - 4);
      ctx.lineTo(x, this.height);
      ctx.fillText((t >= 0 ? "+" : "") + fmtSeconds(t), x + 3, this.axis / 2);
    }
    ctx.stroke();
  };

  Timeline.prototype.drawLabels = function (ctx) {
    var h = this.rowH, top = this.axis, self = this;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, top, this.gutter, this.rows * h);
    ctx.textBaseline = "middle";
    this.groups.forEach(function (group) {
      var y = top + group.first * h;
      ctx.fillStyle = group.color;
      ctx.fillRect(0, y, 3, group.count * h);
      ctx.fillStyle = "#1d232a";
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.fillText(group.name, 8, y + Math.min(group.count * h, 18) / 2, self.gutter - 60);
      if (h >= 10) {
        ctx.font = "10px system-ui, sans-serif";
        ctx.fillStyle = "#5d6873";
        for (var i = 0; i < group.count; i++) {
          ctx.fillText(self.labels[group.first + i], self.gutter - 50, y + i * h + h / 2, 48);
        }
      } else {
        ctx.font = "10px system-ui, sans-serif";
        ctx.fillStyle = "#5d6873";
        ctx.fillText(group.count + " lanes", 8, y + Math.min(group.count * h, 18) / 2 + 13, self.gutter - 12);
      }
      ctx.strokeStyle = "#c9cfd6";
      ctx.beginPath();
      ctx.moveTo(0, y + 0.5);
      ctx.lineTo(self.width, y + 0.5);
      ctx.stroke();
    });
  };

  Timeline.prototype.hit = function (x, y) {
    var row = Math.floor((y - this.axis) / this.rowH);
    if (row < 0 || row >= this.rows || x < this.gutter) { return -1; }
    var scale = this.scale(), t = this.t0 + (x - this.gutter) / scale, slack = 3 / scale;
    var list = this.perRow[row], lo = 0, hi = list.length - 1, found = -1;
    while (lo <= hi) {  // the last rect starting before t (+ slack)
      var mid = (lo + hi) >> 1;
      if (this.start[list[mid]] <= t + slack) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    for (var i = found; i >= 0 && i > found - 8; i--) {
      var k = list[i];
      if (this.end[k] >= t - slack) { return this.rectAttempt[k]; }
    }
    return -1;
  };

  Timeline.prototype.describe = function (a) {
    var model = this.model, at = model.attempts, c = model.bySeq.get(at.seq[a]), cm = model.commands;
    var cpu = at.user_seconds[a] === null && at.system_seconds[a] === null ? null :
      (at.user_seconds[a] || 0) + (at.system_seconds[a] || 0);
    var end = at.end[a] === null ? model.now : at.end[a];
    var lines = [
      cm.name[c] + "  [" + at.status[a] + (at.returncode[a] !== null ? ", exit " + at.returncode[a] : "") +
        (at.signal[a] ? ", signal " + at.signal[a] : "") + "]",
      "attempt " + (at.attempt[a] + 1) + " of " + cm.attempts[c] + " · runner " + at.runner[a] +
        (cm.host[c] ? " (" + cm.host[c] + ")" : "") + " · cores " + compressCores(at.cores[a]),
      "start +" + fmtSeconds(at.start[a]) + " · duration " + fmtSeconds(end - at.start[a]) +
        (at.end[a] === null ? " (running)" : ""),
      "cpu " + fmtSeconds(cpu) + " · peak rss " + fmtKib(at.max_rss_kb[a]),
      "work dir " + (cm.work_dir[c] || "-")
    ];
    if (at.error[a]) { lines.push("error " + at.error[a]); }
    if (cm.command[c]) { lines.push("$ " + (cm.command[c].length > 300 ? cm.command[c].slice(0, 300) + "…" : cm.command[c])); }
    return lines.join("\n");
  };

  Timeline.prototype.listen = function () {
    var self = this, canvas = this.canvas, drag = null, pending = false;
    function redraw() {
      if (pending) { return; }
      pending = true;
      requestAnimationFrame(function () { pending = false; self.draw(); if (self.onView) { self.onView(self.t0, self.t1); } });
    }
    this.redraw = redraw;
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      var rect = canvas.getBoundingClientRect(), x = event.clientX - rect.left, scale = self.scale();
      if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
        var shift = (event.deltaX || event.deltaY) / scale;
        self.t0 += shift; self.t1 += shift;
      } else {
        var anchor = self.t0 + Math.max(0, x - self.gutter) / scale;
        var factor = Math.exp(event.deltaY * 0.0015);
        var span = Math.max(1e-5, (self.t1 - self.t0) * factor);
        self.t0 = anchor - (anchor - self.t0) * span / (self.t1 - self.t0);
        self.t1 = self.t0 + span;
      }
      redraw();
    }, { passive: false });
    canvas.addEventListener("mousedown", function (event) {
      drag = { x: event.clientX, t0: self.t0, t1: self.t1 };
      canvas.classList.add("dragging");
    });
    window.addEventListener("mouseup", function () { drag = null; canvas.classList.remove("dragging"); });
    canvas.addEventListener("dblclick", function () { self.reset(); if (self.onView) { self.onView(self.t0, self.t1); } });
    canvas.addEventListener("mouseleave", function () { self.tooltip.hidden = true; });
    canvas.addEventListener("mousemove", function (event) {
      var rect = canvas.getBoundingClientRect();
      if (drag) {
        var dt = (event.clientX - drag.x) / self.scale();
        self.t0 = drag.t0 - dt; self.t1 = drag.t1 - dt;
        self.tooltip.hidden = true;
        redraw();
        return;
      }
      var a = self.hit(event.clientX - rect.left, event.clientY - rect.top);
      if (a < 0) { self.tooltip.hidden = true; return; }
      self.tooltip.textContent = self.describe(a);
      self.tooltip.hidden = false;
      var tx = event.clientX + 14, ty = event.clientY + 14;
      if (tx + self.tooltip.offsetWidth > window.innerWidth) { tx = event.clientX - self.tooltip.offsetWidth - 14; }
      if (ty + self.tooltip.offsetHeight > window.innerHeight) { ty = event.clientY - self.tooltip.offsetHeight - 14; }
      self.tooltip.style.left = tx + "px";
      self.tooltip.style.top = ty + "px";
    });
    window.addEventListener("resize", function () { self.resize(); });
  };

  function legend() {
    var box = $("legend");
    ["ok", "failed", "timeout", "oom", "error", "cancelled", "running"].forEach(function (status) {
      var item = el("span");
      var swatch = el("span", { "class": "swatch" });
      swatch.style.background = colorOf(status);
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(status));
      box.appendChild(item);
    });
  }

  // -- running and queued over time -----------------------------------------------------------------------

  function steps(changes) {  // [[t, delta], ...] -> sorted change points {t: Float64Array, v: Float64Array}
    changes.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    var t = [], v = [], level = 0;
    for (var i = 0; i < changes.length; i++) {
      level += changes[i][1];
      if (t.length && t[t.length - 1] === changes[i][0]) { v[v.length - 1] = level; } else { t.push(changes[i][0]); v.push(level); }
    }
    return { t: t, v: v };
  }

  function sample(step, grid) {  // the highest level within each grid interval, so short peaks still show
    var out = new Array(grid.length), j = 0, level = 0;
    for (var i = 0; i < grid.length; i++) {
      var until = i + 1 < grid.length ? grid[i + 1] : Infinity, peak = level;
      while (j < step.t.length && step.t[j] < until) { level = step.v[j]; if (level > peak) { peak = level; } j++; }
      out[i] = peak;
    }
    return out;
  }

  function aggregatedLoad(model) {  // computed over every attempt, where the page holds a sample of them
    var load = model.raw.aggregate.load, names = model.runners.map(function (r) { return r.name; });
    names = names.filter(function (n) { return load.running[n]; });
    return { grid: load.grid, names: names, running: names.map(function (n) { return load.running[n]; }),
             queued: load.queued };
  }

  function loadChart(model, timeline) {
    var lines = model.raw.aggregate ? aggregatedLoad(model) : loadLines(model, timeline);
    var series = [{ label: "time", value: function (u, v) { return v === null ? "-" : "+" + fmtSeconds(v); } }];
    var columns = [lines.grid];
    lines.names.forEach(function (name, index) {
      columns.push(lines.running[index]);
      series.push({ label: "running on " + name, stroke: RUNNER_COLORS[index % RUNNER_COLORS.length], width: 1.5,
                    paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } });
    });
    columns.push(lines.queued);
    // Queued has its own scale, on the right: 100,000 queued would flatten 64 running to nothing.
    series.push({ label: "queued", stroke: "#9aa3ad", width: 1.5, dash: [5, 3], scale: "queued",
                  paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } });
    var box = $("load-chart");
    var chart = new uPlot({
      width: Math.max(400, box.clientWidth), height: 240, series: series,
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.05)]; } },
                queued: { range: function (u, min, max) { return [0, Math.max(1, max * 1.05)]; } } },
      axes: [{ values: function (u, ticks) { return ticks.map(function (t) { return "+" + fmtSeconds(t); }); } },
             { label: "running" },
             { label: "queued", scale: "queued", side: 1, grid: { show: false } }],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true }
    }, columns, box);
    return chart;
  }

  function loadLines(model, timeline) {  // running per runner and queued, from the attempts the page holds
    var at = model.attempts, cm = model.commands, now = model.now;
    var perRunner = {}, queued = [];
    for (var i = 0; i < at.length; i++) {
      if (at.start[i] === null) { continue; }
      var list = perRunner[at.runner[i]] = perRunner[at.runner[i]] || [];
      list.push([at.start[i], 1], [at.end[i] === null ? now : at.end[i], -1]);
    }
    var firstAttempt = new Map();  // command index -> its attempts, in order
    for (var a = 0; a < at.length; a++) {
      var c = model.bySeq.get(at.seq[a]);
      if (!firstAttempt.has(c)) { firstAttempt.set(c, []); }
      firstAttempt.get(c).push(a);
    }
    for (var k = 0; k < cm.length; k++) {
      if (cm.queued[k] === null) { continue; }
      var since = cm.queued[k], mine = firstAttempt.get(k) || [];
      for (var m = 0; m < mine.length; m++) {
        var x = mine[m];
        if (at.start[x] !== null) { queued.push([since, 1], [Math.max(since, at.start[x]), -1]); }
        since = at.end[x] === null ? now : at.end[x];
      }
      if (cm.status[k] === "queued") { queued.push([since, 1], [now, -1]); }
      else if (!mine.length && cm.finished[k] !== null) { queued.push([since, 1], [Math.max(since, cm.finished[k]), -1]); }
    }
    var names = model.runners.map(function (r) { return r.name; }).filter(function (n) { return perRunner[n]; });
    var t0 = timeline.tmin, t1 = timeline.tmax, n = 1500, grid = new Array(n);
    for (var g = 0; g < n; g++) { grid[g] = t0 + (t1 - t0) * g / (n - 1); }
    return { grid: grid, names: names, queued: sample(steps(queued), grid),
             running: names.map(function (name) { return sample(steps(perRunner[name]), grid); }) };
  }

  // -- durations -------------------------------------------------------------------------------------------

  function durationsChart(model) {
    var histogram = model.raw.aggregate ? model.raw.aggregate.durations : durationHistogram(model);
    var box = $("durations-chart");
    if (!histogram) { box.appendChild(el("p", { "class": "note" }, "No command has finished yet.")); return null; }
    var edges = histogram.edges, bins = edges.length - 1, xs = [];
    for (var b = 0; b < bins; b++) { xs.push(b); }
    var all = histogram.all.map(function (n) { return n || null; });  // no bar at all, rather than a flat one,
    var failed = histogram.failed.map(function (n) { return n || null; });  // where a bin is empty
    var bars = uPlot.paths.bars({ size: [0.9, 60] });
    return new uPlot({
      width: Math.max(400, box.clientWidth), height: 240,
      series: [{ label: "duration", value: function (u, v) { return v === null ? "-" : fmtSeconds(edges[v]) + " – " + fmtSeconds(edges[v + 1]); } },
               { label: "commands", fill: "rgba(46,158,91,.75)", stroke: "#2e9e5b", paths: bars, points: { show: false } },
               { label: "of which not ok", fill: "rgba(214,69,69,.85)", stroke: "#d64545", paths: bars, points: { show: false } }],
      scales: { x: { time: false, range: [-0.5, bins - 0.5] }, y: { range: function (u, mn, mx) { return [0, Math.max(1, mx * 1.1)]; } } },
      axes: [{ label: "duration" + (histogram.log ? " (log scale)" : ""),
               values: function (u, ticks) { return ticks.map(function (t) { return Number.isInteger(t) && t >= 0 && t < bins ? fmtSeconds(edges[t]) : ""; }); } },
             { label: "commands" }],
      cursor: { drag: { x: false, y: false } }
    }, [xs, all, failed], box);
  }

  function durationHistogram(model) {  // {edges, all, failed, log}; aggregate.durations for a big run
    var cm = model.commands, values = [], bad = [];
    for (var i = 0; i < cm.length; i++) {
      var d = cm.duration[i];
      if (d === null || cm.resumed[i] || cm.status[i] === "running" || cm.status[i] === "queued") { continue; }
      values.push(d); bad.push(cm.status[i] !== "ok");
    }
    if (!values.length) { return null; }
    var min = Infinity, max = -Infinity;
    values.forEach(function (v) { if (v < min) { min = v; } if (v > max) { max = v; } });
    var bins = 40, logScale = min > 0 && max / min > 50, edges = [];
    var lo = logScale ? Math.log(min) : min, hi = logScale ? Math.log(max) : max;
    if (hi <= lo) { hi = lo + (logScale ? 0.01 : Math.max(1e-3, lo * 0.01)); }
    for (var e = 0; e <= bins; e++) { var p = lo + (hi - lo) * e / bins; edges.push(logScale ? Math.exp(p) : p); }
    var all = new Array(bins).fill(0), failed = new Array(bins).fill(0);
    values.forEach(function (v, index) {
      var q = ((logScale ? Math.log(Math.max(v, min)) : v) - lo) / (hi - lo);
      var bin = Math.min(bins - 1, Math.max(0, Math.floor(q * bins)));
      all[bin]++;
      if (bad[index]) { failed[bin]++; }
    });
    return { edges: edges, all: all, failed: failed, log: logScale };
  }

  // -- failures and the slowest commands --------------------------------------------------------------------

  function lastLine(text) {
    if (!text) { return ""; }
    var lines = text.replace(/\s+$/, "").split("\n");
    return lines[lines.length - 1].slice(0, 200);
  }

  function statusText(cm, i) {  // an oom names its limit: "oom (limit 64 MiB)"
    var limit = cm.memory_limit ? cm.memory_limit[i] : null;
    return cm.status[i] === "oom" && limit ? "oom (limit " + fmtSize(limit) + ")" : cm.status[i];
  }

  function fmtSize(bytes) {  // as parallux names a memory limit: "64 MiB", "1.5 GiB"
    var units = [["TiB", 1099511627776], ["GiB", 1073741824], ["MiB", 1048576], ["KiB", 1024]];
    for (var u = 0; u < units.length; u++) {
      if (bytes >= units[u][1]) {
        var value = bytes / units[u][1];
        return (value === Math.round(value) ? value.toFixed(0) : value.toFixed(1)) + " " + units[u][0];
      }
    }
    return bytes + " bytes";
  }

  function failures(model) {
    var cm = model.commands, tails = new Map();
    (model.raw.failures || []).forEach(function (f) { tails.set(f.seq, f.stderr_tail); });
    var failed = [];
    for (var i = 0; i < cm.length; i++) {
      if (["ok", "running", "queued"].indexOf(cm.status[i]) < 0) { failed.push(i); }
    }
    var groupsBox = $("failure-groups"), listBox = $("failures");
    if (!failed.length) { groupsBox.appendChild(el("p", { "class": "note" }, "No command failed.")); return; }
    var groups = new Map();
    failed.forEach(function (i) {
      var tail = tails.get(cm.seq[i]);
      var key = [cm.runner[i] || "-", statusText(cm, i), cm.returncode[i] === null ? "-" : cm.returncode[i],
                 tail === undefined ? "" : lastLine(tail)].join("\u0000");
      groups.set(key, (groups.get(key) || 0) + 1);
    });
    var t = el("table"), head = el("tr");
    ["count", "runner", "status", "exit", "last stderr line"].forEach(function (h) { head.appendChild(el("th", null, h)); });
    t.appendChild(head);
    Array.from(groups.entries()).sort(function (a, b) { return b[1] - a[1]; }).slice(0, 50).forEach(function (entry) {
      var parts = entry[0].split("\u0000"), tr = el("tr");
      tr.appendChild(el("td", { "class": "num" }, entry[1]));
      parts.forEach(function (p, index) { tr.appendChild(el("td", index === 3 ? { "class": "mono" } : null, p)); });
      t.appendChild(tr);
    });
    groupsBox.appendChild(t);
    var shown = failed.slice(0, (model.raw.failures || []).length || 200);
    shown.forEach(function (i) {
      var details = el("details"), tail = tails.get(cm.seq[i]);
      details.appendChild(el("summary", null, cm.name[i] + " — " + statusText(cm, i) +
        (cm.returncode[i] !== null ? " (exit " + cm.returncode[i] + ")" : "") + " on " + (cm.runner[i] || "-") +
        " · " + (cm.work_dir[i] || "not started") + (cm.error[i] ? " · " + cm.error[i] : "")));
      if (cm.command[i]) { details.appendChild(el("pre", null, "$ " + cm.command[i])); }
      details.appendChild(el("pre", null, tail ? tail : "(no stderr recorded)"));
      listBox.appendChild(details);
    });
    if (failed.length > shown.length) {
      listBox.appendChild(el("p", { "class": "note" }, "… and " + (failed.length - shown.length) +
        " more failed commands (parallux show --failed lists them all)."));
    }
  }

  function slowest(model) {
    var cm = model.commands, order = [];
    for (var i = 0; i < cm.length; i++) { if (cm.duration[i] !== null && !cm.resumed[i]) { order.push(i); } }
    order.sort(function (a, b) { return cm.duration[b] - cm.duration[a]; });
    var box = $("slowest");
    if (!order.length) { box.appendChild(el("p", { "class": "note" }, "No command has finished yet.")); return; }
    var t = el("table"), head = el("tr");
    ["name", "runner", "host", "cores", "status", "duration", "cpu", "peak rss", "attempts", "work dir"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    t.appendChild(head);
    order.slice(0, 25).forEach(function (i) {
      var tr = el("tr");
      var cpu = cm.cpu_seconds[i];
      [[cm.name[i]], [cm.runner[i] || "-"], [cm.host[i] || "-"], [compressCores(cm.cores[i])], [cm.status[i]],
       [fmtSeconds(cm.duration[i]), "num"], [fmtSeconds(cpu), "num"], [fmtKib(cm.max_rss_kb[i]), "num"],
       [cm.attempts[i], "num"], [cm.work_dir[i] || "-", "mono"]].forEach(function (cell) {
        tr.appendChild(el("td", cell[1] ? { "class": cell[1] } : null, cell[0]));
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
  }

  // -- main ----------------------------------------------------------------------------------------------

  function main() {
    var model = load();
    hook.data = model.raw;
    header(model);
    legend();
    var timeline = new Timeline(model);
    hook.timeline = timeline;
    var load_ = loadChart(model, timeline);
    timeline.onView = function (t0, t1) { load_.setScale("x", { min: t0, max: t1 }); };
    var durations = durationsChart(model);
    window.addEventListener("resize", function () {
      [[load_, "load-chart"], [durations, "durations-chart"]].forEach(function (pair) {
        if (pair[0]) { pair[0].setSize({ width: Math.max(400, $(pair[1]).clientWidth), height: 240 }); }
      });
    });
    failures(model);
    slowest(model);
    // other sections (benchmarks.js) registered themselves before this script ran
    (window.__parallux_sections || []).forEach(function (section) {
      section(model.raw, hook, { el: el, fmtSeconds: fmtSeconds, fmtKib: fmtKib, tooltip: $("tooltip") });
    });
    hook.render_ms = performance.now();
    hook.ready = true;
  }

  try {
    main();
  } catch (error) {
    hook.errors.push(String(error && error.stack || error));
    console.error(error);
    var note = el("p", { "class": "note" }, "The report could not be drawn: " + error);
    document.body.insertBefore(note, document.body.firstChild);
  }
})();
