// Keeps the first page of the runs list current: new runs and status changes show
// up without a reload. It reloads only the table, twice a second, while the tab is
// visible, and stops if the login session ends.
(function () {
  "use strict";

  var box = document.getElementById("runs-table");
  if (!box || box.dataset.follow !== "true" || !window.fetch) {
    return;
  }

  var INTERVAL_MS = 500;
  var RETRY_MS = 5000;
  var url = box.dataset.fragmentUrl;
  var last = null;

  function refresh() {
    if (document.visibilityState !== "visible") {
      window.setTimeout(refresh, INTERVAL_MS);
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 403) {
          return null;  // Logged out: stop.
        }
        if (!response.ok) {
          window.setTimeout(refresh, RETRY_MS);
          return null;
        }
        return response.text().then(function (html) {
          // The fragment is the server's own escaped rendering of the table.
          if (html !== last) {
            last = html;
            box.innerHTML = html;
          }
          window.setTimeout(refresh, INTERVAL_MS);
        });
      })
      .catch(function () {
        window.setTimeout(refresh, RETRY_MS);
      });
  }

  window.setTimeout(refresh, INTERVAL_MS);
})();
