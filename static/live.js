/* Lists that update live, and desktop notifications when your task ends.
 *
 * One Server-Sent Events stream per page (/api/tasks/changes): each change (a task queued, its status changed)
 * makes the page fetch itself again and swap in its fresh [data-live-list] sections, as the server renders them,
 * so filters and the rest of the page (a half-written prompt) stay as they are. A task of yours that ends while
 * the page is in the background shows a desktop notification, if you turned them on in Settings.
 */
(function () {
  "use strict";

  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];
  var NOTIFY_KEY = "aicode.notifications";
  var REFRESH_DELAY_MS = 250; // changes in a burst (a task queued then started) are one fetch

  function liveLists() { return document.querySelectorAll("[data-live-list]"); }

  var refreshing = false;
  var again = false;
  var timer = null;

  function refresh() {
    timer = null;
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        liveLists().forEach(function (node) {
          var replacement = fresh.querySelector('[data-live-list="' + node.dataset.liveList + '"]');
          if (replacement) node.replaceWith(document.adoptNode(replacement));
        });
        document.dispatchEvent(new CustomEvent("aicode:lists-updated"));
      })
      .catch(function () { /* the next change tries again */ })
      .then(function () {
        refreshing = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (!timer) timer = setTimeout(refresh, REFRESH_DELAY_MS);
  }

  function notificationsOn() {
    return "Notification" in window && Notification.permission === "granted" &&
      window.localStorage.getItem(NOTIFY_KEY) === "on";
  }

  function notify(change, me) {
    if (TERMINAL.indexOf(change.status) < 0 || !notificationsOn()) return;
    if (change.user_id !== me && change.turn_user_id !== me) return;
    // Someone looking at the page sees it change; a notification is for a page in the background.
    if (document.visibilityState === "visible" && document.hasFocus()) return;
    window.aicode.getJSON("/api/tasks/" + change.id).then(function (task) {
      var title = (change.kind === "session" ? "Session " : "Task ") + change.status;
      var body = String(task.prompt || "").split("\n")[0].slice(0, 140);
      var shown = new Notification(title, { body: body, tag: "aicode-task-" + change.id });
      shown.onclick = function () {
        window.focus();
        window.location.assign("/tasks/" + change.id);
      };
    }).catch(function () { /* no notification for a task that cannot be read */ });
  }

  // Settings: the opt-in switch (the browser asks for permission the first time).
  function notificationSwitch() {
    var control = document.querySelector("[data-desktop-notifications]");
    if (!control) return;
    var state = control.querySelector("[data-notify-state]");
    var button = control.querySelector("button");
    var show = function () {
      if (!("Notification" in window)) {
        state.textContent = "This browser cannot show notifications.";
        button.disabled = true;
      } else if (Notification.permission === "denied") {
        state.textContent = "Blocked for this site in the browser's settings.";
        button.disabled = true;
      } else {
        state.textContent = notificationsOn() ? "On: a notification when your task ends while this site is in the background." : "Off.";
        button.textContent = notificationsOn() ? "Turn off" : "Turn on";
        button.setAttribute("aria-pressed", notificationsOn() ? "true" : "false");
      }
    };
    button.addEventListener("click", function () {
      if (notificationsOn()) {
        window.localStorage.setItem(NOTIFY_KEY, "off");
        show();
        return;
      }
      Notification.requestPermission().then(function (permission) {
        window.localStorage.setItem(NOTIFY_KEY, permission === "granted" ? "on" : "off");
        show();
      });
    });
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    notificationSwitch();
    var me = document.body.dataset.userId;
    if (!me || !window.EventSource) return;
    var scope = document.querySelector("[data-live-workspace]");
    var url = "/api/tasks/changes" + (scope ? "?workspace_id=" + encodeURIComponent(scope.dataset.liveWorkspace) : "");
    var source = new EventSource(url);
    source.addEventListener("listening", function () {
      // (Re)connected: changes missed while the stream was down are picked up by one refresh.
      if (document.body.dataset.listsLive === "off" && liveLists().length) schedule();
      document.body.dataset.listsLive = "on";
    });
    source.addEventListener("error", function () { document.body.dataset.listsLive = "off"; });
    source.addEventListener("task", function (event) {
      var change;
      try { change = JSON.parse(event.data); } catch (err) { return; }
      if (liveLists().length) schedule();
      notify(change, me);
    });
    // Leaving the page closes the stream at once (not when the page is torn down).
    window.addEventListener("pagehide", function () { source.close(); });
  });
})();
