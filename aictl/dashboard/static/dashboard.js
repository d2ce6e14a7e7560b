// Live updates: the server says "change" on /events; the page fetches its live region again.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!live || !window.EventSource) return;
  var busy = false, again = false;
  function typing() {
    var el = document.activeElement;
    return el && live.contains(el) && (el.tagName === "INPUT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (busy || typing()) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          document.body.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  live.addEventListener("focusout", function () { if (again) { again = false; refresh(); } });
  var events = new EventSource("/events");
  events.addEventListener("hello", function () { state.className = "on"; });
  events.addEventListener("change", refresh);
  events.onerror = function () { state.className = "off"; };
  events.onopen = function () { state.className = "on"; };
})();
