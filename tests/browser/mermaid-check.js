// Renders every Mermaid chart of the page it is loaded into, with the Mermaid library loaded
// before it, and writes each outcome into the page for a test to read from the dumped DOM
// (tests/markdown_mermaid.rs): a `div.result` per chart with `data-status` ("ok" or "error"),
// the number of tasks Mermaid drew (`data-tasks`, bars and milestones) and the error's text.
// The charts are `<pre class="chart">` elements; their text is the diagram.
(async function () {
  "use strict";
  var results = document.getElementById("results");
  var charts = document.querySelectorAll("pre.chart");
  try {
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
  } catch (e) {
    document.body.setAttribute("data-init-error", String(e && e.message || e));
  }
  for (var i = 0; i < charts.length; i++) {
    var text = charts[i].textContent;
    var result = document.createElement("div");
    result.className = "result";
    result.setAttribute("data-index", String(i));
    try {
      await mermaid.parse(text);
      var rendered = await mermaid.render("chart" + i, text);
      var holder = document.createElement("div");
      holder.innerHTML = rendered.svg;
      var svg = holder.querySelector("svg");
      if (!svg) { throw new Error("no SVG rendered"); }
      if (/Syntax error/.test(svg.textContent)) { throw new Error("Mermaid drew its error diagram"); }
      result.setAttribute("data-status", "ok");
      result.setAttribute("data-tasks", String(svg.querySelectorAll("rect.task").length));
      result.setAttribute("data-labels", String(svg.querySelectorAll("text.taskText, text.taskTextOutsideRight, text.taskTextOutsideLeft").length));
      result.appendChild(holder);
    } catch (e) {
      result.setAttribute("data-status", "error");
      result.textContent = String(e && e.message || e);
    }
    results.appendChild(result);
  }
  document.body.setAttribute("data-done", String(charts.length));
})();
