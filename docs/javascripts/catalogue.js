// Filter box over the catalogue tables (catalogue/index and the family pages): free text, status
// and small-scale level (the row's `.zoo-scale` badge, `zoo-badge--scale-<level>`).
// Works with and without material's instant navigation.
(function () {
  function bind() {
    var input = document.getElementById("zoo-filter");
    var wrap = document.getElementById("zoo-catalogue");
    if (!input || !wrap || input.dataset.zooBound) return;
    input.dataset.zooBound = "1";
    var select = document.getElementById("zoo-filter-status");
    var scale = document.getElementById("zoo-filter-scale");
    var count = document.getElementById("zoo-filter-count");
    var rows = Array.prototype.slice.call(wrap.querySelectorAll("tbody tr"));
    var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
    function badge(r, selector, pattern) {
      var b = r.querySelector(selector);
      var m = b && b.className.match(pattern);
      return m ? m[1] : "";
    }
    var statuses = rows.map(function (r) { return badge(r, ".zoo-badge:not(.zoo-scale)", /zoo-badge--(\w+)/); });
    var levels = rows.map(function (r) { return badge(r, ".zoo-scale", /zoo-badge--scale-(\w+)/); });
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var want = select ? select.value : "";
      var level = scale ? scale.value : "";
      var shown = 0;
      rows.forEach(function (r, i) {
        var ok = (!want || statuses[i] === want) && (!level || levels[i] === level) &&
          words.every(function (w) { return texts[i].indexOf(w) !== -1; });
        r.hidden = !ok;
        if (ok) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " entries";
    }
    input.addEventListener("input", apply);
    if (select) select.addEventListener("change", apply);
    if (scale) scale.addEventListener("change", apply);
    apply();
  }
  if (typeof document$ !== "undefined" && document$.subscribe) {
    document$.subscribe(bind);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", bind);
  } else {
    bind();
  }
})();
