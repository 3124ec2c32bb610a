/* runtrack dashboard: live refresh, nothing else. Pages are complete without
   this file; with it, the element #live of a page that shows active runs is
   re-fetched every few seconds and swapped in place, until nothing is active. */
"use strict";

(function () {
  function userIsTyping(region) {
    var active = document.activeElement;
    return Boolean(active && region.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  function follow(region) {
    var seconds = parseFloat(region.getAttribute("data-live")) || 3;

    function schedule() {
      window.setTimeout(refresh, seconds * 1000);
    }

    function swap(html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
      if (!fresh) {
        return;
      }
      region.innerHTML = fresh.innerHTML;
      if (fresh.hasAttribute("data-live")) {
        schedule();
      } else {
        region.removeAttribute("data-live");
      }
    }

    function refresh() {
      if (document.hidden || userIsTyping(region)) {
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

    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var region = document.getElementById("live");
    if (region && region.hasAttribute("data-live")) {
      follow(region);
    }
  });
}());
