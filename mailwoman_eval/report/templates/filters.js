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
    var inView = want.adv === undefined ? {} : {adv: want.adv};
    sections.forEach(function (d) {
      var n = d.querySelectorAll("tr.ex:not([hidden])").length;
      // "n of total": total counts the section's rows of the chosen view (rows of the other views
      // are on the page to top each view up, and are not what the filter narrows down from)
      var total = Array.prototype.filter.call(d.querySelectorAll("tr.ex"), function (r) { return matches(r, inView); }).length;
      d.hidden = active && n === 0;
      if (active && n > 0) d.open = true;
      var vis = d.querySelector(".vis");
      if (vis) vis.textContent = active ? n + " of " + total + " shown" : total + " shown";
    });
    // a filter on rows (kind, category, change, file, country) hides a block with no row left; the
    // view filter alone hides one with nothing in the view (data-views: compare's blocks can have
    // category shifts in a view and no changed entry there), else, as before, one with no row
    var rowFilter = Object.keys(want).some(function (k) { return k !== "adv" && k !== "tag"; });
    blocks.forEach(function (b) {
      var tagOff = want.tag !== undefined && b.getAttribute("data-tag") !== want.tag;
      var noRows = b.querySelectorAll("tr.ex:not([hidden])").length === 0;
      var none = false;
      if (rowFilter) {
        none = noRows;
      } else if (want.adv !== undefined && want.adv !== "") {
        none = b.hasAttribute("data-views") ? (" " + b.getAttribute("data-views") + " ").indexOf(" " + want.adv + " ") < 0 : noRows;
      }
      b.hidden = tagOff || none;
    });
    counter.textContent = active ? shown + " of " + rows.length + " example rows" : rows.length + " example rows";
  }
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  form.addEventListener("reset", function () { setTimeout(apply, 0); });
})();
