// Live refresh: while the element #live says data-live="1", re-fetch its fragment every 2 s and swap it in.
(function () {
  "use strict";
  var DELAY = 2000;
  function poll() {
    var el = document.getElementById("live");
    if (!el || el.getAttribute("data-live") !== "1") { return; }
    fetch(el.getAttribute("data-live-url"), {headers: {"X-Console-Fragment": "1"}, credentials: "same-origin"})
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("refresh stopped: " + r.status); }
        return r.text();
      })
      .then(function (html) {
        el.outerHTML = html;
        setTimeout(poll, DELAY);
      })
      .catch(function () { setTimeout(poll, DELAY * 5); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, DELAY); });
})();
