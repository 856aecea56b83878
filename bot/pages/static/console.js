// The console's only script (no inline scripts: the Content-Security-Policy forbids them).
// htmx sends the session's CSRF token with every request it makes.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});

// Charts: <div class="chart" data-chart="ID"> with <script type="application/json" id="ID"> holding an
// ECharts option (data, not code). Drawn when ECharts is on the page.
function drawCharts(root) {
  if (typeof echarts === "undefined") { return; }
  (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source || el.dataset.drawn) { return; }
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(JSON.parse(source.textContent));
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  });
}
document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });
