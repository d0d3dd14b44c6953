// Filter box over the catalogue tables (catalogue/index and the family pages).
// Works with and without material's instant navigation.
(function () {
  function bind() {
    var input = document.getElementById("zoo-filter");
    var wrap = document.getElementById("zoo-catalogue");
    if (!input || !wrap || input.dataset.zooBound) return;
    input.dataset.zooBound = "1";
    var select = document.getElementById("zoo-filter-status");
    var count = document.getElementById("zoo-filter-count");
    var rows = Array.prototype.slice.call(wrap.querySelectorAll("tbody tr"));
    var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
    var statuses = rows.map(function (r) {
      var b = r.querySelector(".zoo-badge");
      var m = b && b.className.match(/zoo-badge--(\w+)/);
      return m ? m[1] : "";
    });
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var want = select ? select.value : "";
      var shown = 0;
      rows.forEach(function (r, i) {
        var ok = (!want || statuses[i] === want) &&
          words.every(function (w) { return texts[i].indexOf(w) !== -1; });
        r.hidden = !ok;
        if (ok) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " entries";
    }
    input.addEventListener("input", apply);
    if (select) select.addEventListener("change", apply);
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
