// PRISM-WEB live updates: one EventSource per page view; each message carries server-rendered fragments
// keyed by section id, and only sections present on this page are replaced. EventSource reconnects by itself
// after a lost connection; the connection state is shown in the header.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live-url");
  var conn = document.getElementById("conn");
  var updated = document.getElementById("updated");
  if (!url || !window.EventSource) {
    if (conn) { conn.textContent = ""; }
    return;
  }

  function setState(text, cls) {
    if (!conn) { return; }
    conn.textContent = text;
    conn.className = "conn " + cls;
  }

  // The last fragment applied per section: an unchanged one is left alone, so a button is never swapped
  // out from under a pointer between press and release.
  var applied = {};

  function apply(fragments) {
    Object.keys(fragments).forEach(function (id) {
      var target = document.querySelector('[data-live="' + id + '"]');
      if (!target || applied[id] === fragments[id]) { return; }
      // Do not replace a fragment while the user is typing or has focus inside it.
      if (target.contains(document.activeElement) && document.activeElement !== document.body) { return; }
      target.innerHTML = fragments[id];
      applied[id] = fragments[id];
    });
    if (updated) {
      updated.textContent = new Date().toLocaleTimeString();
      updated.setAttribute("datetime", new Date().toISOString());
    }
    if (!document.body.hasAttribute("data-live-count") && window.performance && performance.mark) {
      performance.mark("prism:live-applied");
    }
    document.body.setAttribute("data-live-count", String(Number(document.body.getAttribute("data-live-count") || 0) + 1));
  }

  var source = new EventSource(url);
  source.addEventListener("open", function () { setState("live", "ok"); });
  source.addEventListener("error", function () { setState("reconnecting…", "warn"); });
  source.addEventListener("sections", function (event) {
    setState("live", "ok");
    apply(JSON.parse(event.data));
  });
  source.addEventListener("signed-out", function () {
    source.close();
    window.location.assign("/login");
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
