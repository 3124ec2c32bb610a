/* runtrack dashboard: live refresh, nothing else. Pages are complete without
   this file; with it, the element #live of a page is re-fetched every
   data-live seconds (short while runs are active, longer when idle, as the
   server says each time) and swapped in place. A hidden tab does not fetch;
   it refreshes as soon as it is shown again. */
"use strict";

(function () {
  function userIsTyping(region) {
    var active = document.activeElement;
    return Boolean(active && region.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  function follow(region) {
    var seconds = parseFloat(region.getAttribute("data-live")) || 3;
    var timer = null;
    var missed = false;  // a refresh fell due while the tab was hidden

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, seconds * 1000);
    }

    function swap(html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
      if (!fresh) {
        schedule();
        return;
      }
      region.innerHTML = fresh.innerHTML;
      if (fresh.hasAttribute("data-live")) {
        seconds = parseFloat(fresh.getAttribute("data-live")) || seconds;
        region.setAttribute("data-live", String(seconds));
        schedule();
      } else {
        region.removeAttribute("data-live");
      }
    }

    function refresh() {
      if (document.hidden) {
        missed = true;
        return;
      }
      if (userIsTyping(region)) {
        schedule();
        return;
      }
      fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept": "text/html" }
      }).then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      }).then(swap, schedule);
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && missed) {
        missed = false;
        refresh();
      }
    });
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var region = document.getElementById("live");
    if (region && region.hasAttribute("data-live")) {
      follow(region);
    }
  });
}());
