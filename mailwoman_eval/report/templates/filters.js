/* Example-row filters: plain DOM, data attributes only (no external code). */
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) return;
  var selects = Array.prototype.slice.call(form.querySelectorAll("select"));
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.ex"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("details.cat"));
  var blocks = Array.prototype.slice.call(document.querySelectorAll("section.tagblock"));
  var counter = document.getElementById("fcount");
  var perView = Array.prototype.slice.call(document.querySelectorAll("[data-view]"));
  function matches(row, want) {
    for (var k in want) {
      var have = row.getAttribute("data-" + k) || "";
      if (k === "cats") {
        if ((" " + have + " ").indexOf(" " + want[k] + " ") < 0) return false;
      } else if (have !== want[k]) {
        return false;
      }
    }
    return true;
  }
  function apply() {
    var want = {}, active = false;
    selects.forEach(function (s) { if (s.value !== "") { want[s.name] = s.value; active = true; } });
    var view = want.adv === undefined ? "" : want.adv;  // counts, bars and F1 of the chosen view
    perView.forEach(function (el) { el.hidden = el.getAttribute("data-view") !== view; });
    var shown = 0;
    rows.forEach(function (r) { var ok = matches(r, want); r.hidden = !ok; if (ok) shown++; });
    sections.forEach(function (d) {
      var n = d.querySelectorAll("tr.ex:not([hidden])").length;
      var total = d.querySelectorAll("tr.ex").length;
      d.hidden = active && n === 0;
      if (active && n > 0) d.open = true;
      var vis = d.querySelector(".vis");
      if (vis) vis.textContent = active ? n + " of " + total + " shown" : total + " shown";
    });
    blocks.forEach(function (b) {
      var tagOff = want.tag !== undefined && b.getAttribute("data-tag") !== want.tag;
      var none = active && b.querySelectorAll("tr.ex:not([hidden])").length === 0;
      b.hidden = tagOff || none;
    });
    counter.textContent = active ? shown + " of " + rows.length + " example rows" : rows.length + " example rows";
  }
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  form.addEventListener("reset", function () { setTimeout(apply, 0); });
})();
