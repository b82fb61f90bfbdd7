/* agentops: the little the pages need beyond htmx. Everything works without it, only less live. */
(function () {
  "use strict";

  // Copy buttons: <button data-copy="text">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "absolute";
      area.style.left = "-9999px";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } finally { area.remove(); }
    }
  });

  // The run page's live poll tells the server what the timeline shows: which steps it still
  // shows as running (to be replaced) and, when it holds the whole timeline, its last step
  // (steps after it are appended). The server answers with only those rows.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt.hasAttribute || !elt.hasAttribute("data-live-run")) return;
    var steps = document.getElementById("steps");
    if (!steps) return;
    var open = [];
    steps.querySelectorAll("li.step[data-status=running]").forEach(function (li) {
      open.push(li.getAttribute("data-seq"));
    });
    event.detail.parameters.open = open.join(",");
    if (!steps.querySelector("li.more") && !/[?&]after=/.test(window.location.search)) {
      var rows = steps.querySelectorAll("li.step");
      event.detail.parameters.last = rows.length ? rows[rows.length - 1].getAttribute("data-seq") : "-1";
    }
  });
})();
