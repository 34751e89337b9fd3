(function () {
  "use strict";
  var root = document.documentElement;
  root.setAttribute("data-script", "ran");
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var boxes = Array.prototype.slice.call(bar.querySelectorAll("input[data-category]"));
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-category]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section[data-categories]"));
  var shown = document.getElementById("shown");
  function apply() {
    var off = {};
    boxes.forEach(function (box) {
      var category = box.getAttribute("data-category");
      off[category] = !box.checked;
      root.classList.toggle("hide-" + category, !box.checked);
    });
    var visible = rows.filter(function (row) { return !off[row.getAttribute("data-category")]; });
    sections.forEach(function (section) {
      section.hidden = section.getAttribute("data-categories").split(" ").every(function (c) { return off[c]; });
    });
    shown.textContent = visible.length + " of " + rows.length + " findings shown";
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  Array.prototype.forEach.call(bar.querySelectorAll("button[data-preset]"), function (button) {
    button.addEventListener("click", function () {
      var late = button.getAttribute("data-preset") === "late";
      boxes.forEach(function (box) { box.checked = !late || box.hasAttribute("data-late"); });
      apply();
    });
  });
  // A link can choose the categories shown: `report.html#show=client_gone,late_queued`, or
  // `#show=late` for the late writes.
  var wanted = /^#show=([a-z_,]+)$/.exec(location.hash);
  if (wanted) {
    var names = wanted[1].split(",");
    boxes.forEach(function (box) {
      box.checked = names.indexOf(box.getAttribute("data-category")) >= 0 ||
        (names.indexOf("late") >= 0 && box.hasAttribute("data-late"));
    });
  }
  bar.hidden = false;
  apply();
})();
