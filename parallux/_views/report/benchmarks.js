/* parallux report: the benchmarks section (the data's "benchmarks", see docs/reference.md).
 *
 * A page of benchmarks at a time (10,000 of them would be 100,000 points no one reads at once): one row each,
 * the executions that ended ok as points over the box of their values (quartiles, median, whiskers to the
 * farthest point that is no outlier), outliers (the modified z-score rule of `parallux show`, computed when
 * the report was written) in red. The x axis is the deviation from each benchmark's own median, in percent,
 * shared by the rows of the page, so that noise can be compared across benchmarks of any size; each row
 * says its median. Drawn by hand on one canvas, like the timeline. Registers itself for report.js to call.
 */
(function () {
  "use strict";

  var PAGE = 25, ROW = 24, AXIS = 24, GUTTER = 330, POINT = "#3b7dd8", OUTLIER = "#d64545";

  function draw(data, hook, tools) {
    var bench = data.benchmarks, state = hook.benchmarks = {
      count: bench ? bench.rows.length : 0, shown: 0, points_drawn: 0, outliers_drawn: 0, page: 0, pages: 0,
      measure: null, draws: 0
    };
    if (!bench || !bench.rows.length) { return; }
    var $ = function (id) { return document.getElementById(id); };
    $("benchmarks-section").hidden = false;
    var view = { measure: bench.measures[0], order: "submitted", filter: "", page: 0, list: [], drawn: [] };
    var select = $("bench-measure");
    bench.measures.forEach(function (m) { select.appendChild(tools.el("option", { value: m }, m)); });
    var canvas = $("bench-canvas"), box = $("bench-box");

    function format(value) {
      if (value === null || value === undefined) { return "-"; }
      if (view.measure === "wall" || view.measure === "cpu") { return tools.fmtSeconds(value); }
      if (view.measure === "memory") { return tools.fmtKib(value); }
      return Number(value.toPrecision(4)).toString();
    }

    function summary(b) {  // one benchmark's values of the measure: sorted, quartiles, spread (cached)
      var cache = summary.cache[view.measure] = summary.cache[view.measure] || {};
      if (cache[b]) { return cache[b]; }
      var values = bench.values[view.measure][b], found = [];
      for (var i = 0; i < values.length; i++) { if (values[i] !== null) { found.push(values[i]); } }
      found.sort(function (x, y) { return x - y; });
      var n = found.length, mean = 0;
      found.forEach(function (v) { mean += v / n; });
      var sd = 0;
      found.forEach(function (v) { sd += (v - mean) * (v - mean) / Math.max(1, n - 1); });
      return (cache[b] = { n: n, sorted: found, median: quantile(found, 0.5), q1: quantile(found, 0.25),
                           q3: quantile(found, 0.75), cv: n > 1 && mean ? Math.sqrt(sd) / Math.abs(mean) : 0 });
    }
    summary.cache = {};

    function quantile(sorted, q) {
      if (!sorted.length) { return null; }
      var at = (sorted.length - 1) * q, low = Math.floor(at), high = Math.ceil(at);
      return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
    }

    function arrange() {  // the benchmarks shown, in the order asked, and the page
      var text = view.filter.toLowerCase(), list = [];
      for (var b = 0; b < bench.rows.length; b++) {
        var row = bench.rows[b];
        if (!text || row[0].toLowerCase().indexOf(text) >= 0 || row[1].toLowerCase().indexOf(text) >= 0) { list.push(b); }
      }
      if (view.order === "cv") { list.sort(function (x, y) { return summary(y).cv - summary(x).cv; }); }
      if (view.order === "outliers") {
        var out = bench.outliers[view.measure];
        list.sort(function (x, y) { return out[y].length - out[x].length || x - y; });
      }
      if (view.order === "name") { list.sort(function (x, y) { return bench.rows[x][1] < bench.rows[y][1] ? -1 : bench.rows[x][1] > bench.rows[y][1] ? 1 : 0; }); }
      view.list = list;
      view.pages = Math.max(1, Math.ceil(list.length / PAGE));
      view.page = Math.min(view.page, view.pages - 1);
      render();
    }

    function deviation(value, median) { return median ? value / median - 1 : 0; }

    function render() {
      var shown = view.list.slice(view.page * PAGE, (view.page + 1) * PAGE);
      var width = Math.max(600, box.clientWidth), height = AXIS + Math.max(1, shown.length) * ROW + 6;
      var ratio = window.devicePixelRatio || 1;
      canvas.style.width = width + "px"; canvas.style.height = height + "px";
      canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
      var ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      var span = 0.005;  // the page's half range: its farthest point from its median, 0.5% at least
      shown.forEach(function (b) {
        var s = summary(b);
        s.sorted.forEach(function (v) { span = Math.max(span, Math.abs(deviation(v, s.median))); });
      });
      span *= 1.08;
      var left = GUTTER, right = width - 16, x = function (d) { return left + (d + span) / (2 * span) * (right - left); };
      drawAxis(ctx, x, span, height);
      var points = 0, outliers = 0, drawn = [];
      shown.forEach(function (b, r) {
        var s = summary(b), top = AXIS + r * ROW, mid = top + ROW / 2, row = bench.rows[b];
        var flagged = {}, values = bench.values[view.measure][b];
        bench.outliers[view.measure][b].forEach(function (i) { flagged[i] = true; });
        ctx.fillStyle = r % 2 ? "#f6f8fa" : "#fdfdfe";
        ctx.fillRect(0, top, width, ROW);
        ctx.fillStyle = "#1d232a"; ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
        ctx.fillText(row[1], 6, mid, GUTTER - 120);
        ctx.fillStyle = "#5d6873"; ctx.font = "11px ui-monospace, monospace";
        ctx.fillText(s.n ? format(s.median) + " · n " + s.n : "no value", GUTTER - 110, mid, 104);
        if (!s.n) { return; }
        var kept = [];
        for (var i = 0; i < values.length; i++) { if (values[i] !== null && !flagged[i]) { kept.push(values[i]); } }
        var low = kept.length ? Math.min.apply(null, kept) : s.median, high = kept.length ? Math.max.apply(null, kept) : s.median;
        ctx.strokeStyle = "#7b8794"; ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.moveTo(x(deviation(low, s.median)), mid); ctx.lineTo(x(deviation(s.q1, s.median)), mid);
        ctx.moveTo(x(deviation(s.q3, s.median)), mid); ctx.lineTo(x(deviation(high, s.median)), mid);
        ctx.stroke();
        ctx.fillStyle = "rgba(59,125,216,.12)";
        var boxLeft = x(deviation(s.q1, s.median)), boxWidth = Math.max(1, x(deviation(s.q3, s.median)) - boxLeft);
        ctx.fillRect(boxLeft, top + 4, boxWidth, ROW - 8);
        ctx.strokeRect(boxLeft, top + 4, boxWidth, ROW - 8);
        ctx.strokeStyle = "#1d232a"; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(x(0), top + 3); ctx.lineTo(x(0), top + ROW - 3); ctx.stroke();
        for (var k = 0; k < values.length; k++) {
          if (values[k] === null) { continue; }
          var px = x(deviation(values[k], s.median)), py = mid + ((k * 0.618) % 1 - 0.5) * (ROW - 10);
          ctx.beginPath();
          ctx.arc(px, py, flagged[k] ? 3.5 : 2.5, 0, 2 * Math.PI);
          ctx.fillStyle = flagged[k] ? OUTLIER : POINT;
          ctx.fill();
          if (flagged[k]) { ctx.strokeStyle = OUTLIER; ctx.lineWidth = 1; ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke(); outliers++; }
          points++;
          drawn.push([px, py, b, k]);
        }
      });
      view.drawn = drawn;
      $("bench-page").textContent = " page " + (view.page + 1) + " of " + view.pages + " (" + view.list.length +
        " of " + bench.rows.length + " benchmarks) ";
      state.shown = shown.length; state.points_drawn = points; state.outliers_drawn = outliers;
      state.page = view.page; state.pages = view.pages; state.measure = view.measure; state.draws++;
    }

    function drawAxis(ctx, x, span, height) {
      var step = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10].filter(function (s) { return span / s <= 5; })[0] || 20;
      ctx.strokeStyle = "rgba(0,0,0,.08)"; ctx.fillStyle = "#5d6873"; ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle"; ctx.lineWidth = 1;
      ctx.beginPath();
      for (var t = -Math.floor(span / step) * step; t <= span; t += step) {
        var px = Math.round(x(t)) + 0.5;
        ctx.moveTo(px, AXIS - 4); ctx.lineTo(px, height);
        var label = (t > 0 ? "+" : "") + (Math.abs(t) < 1e-12 ? "0" : String(Number((t * 100).toPrecision(6)))) + "%";
        ctx.fillText(label, px + 3, AXIS / 2);
      }
      ctx.stroke();
      ctx.fillText("vs. the median", 6, AXIS / 2);
    }

    canvas.addEventListener("mousemove", function (event) {
      var rect = canvas.getBoundingClientRect(), mx = event.clientX - rect.left, my = event.clientY - rect.top;
      var best = null, distance = 49;
      view.drawn.forEach(function (p) {
        var d = (p[0] - mx) * (p[0] - mx) + (p[1] - my) * (p[1] - my);
        if (d < distance) { distance = d; best = p; }
      });
      if (!best) { tools.tooltip.hidden = true; return; }
      var row = bench.rows[best[2]], s = summary(best[2]), value = bench.values[view.measure][best[2]][best[3]];
      var flagged = bench.outliers[view.measure][best[2]].indexOf(best[3]) >= 0;
      tools.tooltip.textContent = [row[1], "key " + row[0], "repetition " + row[5][best[3]] + " · seq " + row[4][best[3]],
        view.measure + " " + format(value) + " (" + (deviation(value, s.median) * 100).toFixed(2) + "% from the median " +
        format(s.median) + ")" + (flagged ? " · outlier" : ""), "status " + row[2] + " · runners " + (row[3] || "-")].join("\n");
      tools.tooltip.hidden = false;
      tools.tooltip.style.left = (event.clientX + 14) + "px";
      tools.tooltip.style.top = (event.clientY + 14) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tools.tooltip.hidden = true; });
    select.addEventListener("change", function () { view.measure = select.value; arrange(); });
    $("bench-sort").addEventListener("change", function () { view.order = $("bench-sort").value; view.page = 0; arrange(); });
    $("bench-filter").addEventListener("input", function () { view.filter = $("bench-filter").value; view.page = 0; arrange(); });
    $("bench-prev").addEventListener("click", function () { if (view.page > 0) { view.page--; render(); } });
    $("bench-next").addEventListener("click", function () { if (view.page < view.pages - 1) { view.page++; render(); } });
    window.addEventListener("resize", render);
    arrange();
  }

  (window.__parallux_sections = window.__parallux_sections || []).push(draw);
})();
