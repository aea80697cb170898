/* eval reports: filter the rows table by text and status (rows are hidden, never rebuilt) */
(function () {
  "use strict";
  var q = document.getElementById("rowsearch"), st = document.getElementById("rowstatus");
  var count = document.getElementById("rowcount");
  if (!q || !st) return;
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.rows tr.r"));
  var text = null;
  function apply() {
    var needle = q.value.trim().toLowerCase(), want = st.value, shown = 0;
    if (needle && !text) text = rows.map(function (r) { return r.textContent.toLowerCase(); });
    rows.forEach(function (r, i) {
      var ok = (!want || r.getAttribute("data-status") === want) && (!needle || text[i].indexOf(needle) >= 0);
      r.style.display = ok ? "" : "none";
      if (ok) shown++;
    });
    count.textContent = shown + " of " + rows.length + " rows";
  }
  q.addEventListener("input", apply);
  st.addEventListener("change", apply);
  apply();
})();
