// The console's only script (no inline scripts: the Content-Security-Policy forbids them).
// htmx sends the session's CSRF token with every request it makes.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});

// Charts: <div class="chart" data-option='{...}'> holding an ECharts option (data, not code: the server
// builds it from the report). An attribute, not a <script type="application/json"> block: htmx drops script
// elements from what it swaps in (allowScriptTags is off). Drawn when ECharts is on the page.
function drawCharts(root) {
  if (typeof echarts === "undefined") { return; }
  (root || document).querySelectorAll(".chart[data-option]").forEach(function (el) {
    if (el.dataset.drawn) { return; }
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(JSON.parse(el.dataset.option));
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  });
}
document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });
