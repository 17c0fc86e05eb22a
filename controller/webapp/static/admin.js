/* ClassCast admin's dashboard: the panels live while the page is visible, the week filter. */
(function () {
  "use strict";

  var source = null;
  function openEvents() {
    if (source) return;
    source = new EventSource("/admin/events");
    source.addEventListener("panels", function (e) {
      var el = document.getElementById("admin-panels");
      if (el) el.innerHTML = e.data;
    });
  }
  function closeEvents() {
    if (source) { source.close(); source = null; }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) closeEvents(); else openEvents();
  });
  if (!document.hidden) openEvents();

  // The filter reloads the report in place (htmx); the address keeps the choice.
  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form.filter");
    if (!form) return;
    var query = new URLSearchParams(new FormData(form)).toString();
    history.replaceState(null, "", "/admin?" + query);
  });
})();
