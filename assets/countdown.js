// Stuffmart order countdown. The server renders the deadline and the time
// left when the page was made; this makes the time left tick and reloads the
// page when it reaches zero, so the server can say "Order expired". Without
// JavaScript the page still shows the deadline.
(function () {
  "use strict";
  var box = document.querySelector("[data-countdown]");
  if (!box) {
    return;
  }
  var out = box.querySelector("[data-remaining]");
  var left = parseInt(box.getAttribute("data-remaining-ms"), 10);
  if (!out || isNaN(left)) {
    return;
  }
  // Time left is measured on the browser's monotonic clock from the
  // server's figure, so a wrong clock on the computer does not matter.
  var end = performance.now() + left;

  function format(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var ms = end - performance.now();
    out.textContent = format(ms);
    if (ms <= 0) {
      box.setAttribute("data-expired", "true");
      // A little after the deadline, so the server agrees it has passed.
      window.setTimeout(function () {
        window.location.reload();
      }, 500);
      return;
    }
    window.setTimeout(tick, ms % 1000 || 1000);
  }

  tick();
})();
