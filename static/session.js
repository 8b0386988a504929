/* A live session's conversation box, under the feed that static/task.js runs: a prompt typed here
 * goes in at once (while the agent works it waits its turn), Interrupt stops the running turn, End
 * session ends it, and an indicator says whether the agent works or waits for a prompt.
 *
 * Whether a turn runs is read from the events task.js shows (it tells of each through DOM events on
 * #task): a prompt (the first one, or a `follow_up` notice) opens a turn, `turn.completed` closes
 * one, the agent's own activity means one runs, and the live `session.idle` says none does and none
 * waits. A page opened on a session's latest events only may start short of its first prompt: the
 * count never goes below zero, and activity or `session.idle` set it right.
 */
(function () {
  "use strict";

  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];
  var ACTIVITY = ["message", "tool.call", "tool.result", "usage"];
  var LABELS = {
    connecting: "Connecting\u2026", starting: "Starting the agent\u2026", working: "Working\u2026",
    waiting: "Waiting for your prompt", ended: "Ended",
  };
  var root = document.getElementById("task");
  if (!root || root.dataset.kind !== "session") return;

  var api = "/api/tasks/" + root.dataset.taskId;
  var $ = function (selector) { return root.querySelector(selector); };
  var form = $("[data-composer]");
  // Prompts sent and not yet answered (a turn running counts as one); null until the first events are in.
  var state = { status: root.dataset.status, pending: null, sending: false, stopping: false };

  function isTerminal(status) { return TERMINAL.indexOf(status) >= 0; }

  function mode() {
    if (isTerminal(state.status)) return "ended";
    if (state.pending === null) return "connecting";
    if (state.status === "queued") return "starting";
    return state.pending > 0 ? "working" : "waiting";
  }

  function show() {
    var now = mode();
    var indicator = $("[data-session-state]");
    if (indicator.dataset.state !== now) {
      indicator.dataset.state = now;
      indicator.textContent = LABELS[now];
    }
    // A session that ended takes a follow-up, which starts it again with the same agent session.
    var ended = isTerminal(state.status);
    $("[data-follow-card]").hidden = !ended;
    if (!form) return;
    form.hidden = ended;
    var interrupt = form.querySelector("[data-interrupt]");
    if (interrupt) {
      interrupt.hidden = now !== "working";
      if (now !== "working") state.stopping = false;
      interrupt.disabled = state.stopping;
      interrupt.textContent = state.stopping ? "Interrupting\u2026" : "Interrupt";
    }
  }

  function track(ev) {
    if (ev.seq === 1) state.pending = root.dataset.firstPrompt === "1" ? 1 : 0;
    if (state.pending === null) state.pending = 0;
    if (ev.type === "notice" && ev.data.code === "follow_up") state.pending += 1;
    else if (ev.type === "turn.completed") state.pending = Math.max(0, state.pending - 1);
    else if (ACTIVITY.indexOf(ev.type) >= 0 && state.pending === 0) state.pending = 1;
    else if (ev.type === "task.status") {
      state.status = ev.data.status;
      if (isTerminal(ev.data.status)) state.pending = 0; // prompts still waiting were dropped with it
    }
  }

  function showError(message) {
    var node = $("[data-composer-error]");
    node.textContent = message || "";
    node.hidden = !message;
  }

  // The box empties at once, so the next prompt can be typed while this one travels; a prompt the
  // server refused comes back into an empty box.
  function sendPrompt(event) {
    event.preventDefault();
    var area = form.elements.prompt;
    var text = area.value.trim();
    if (!text || state.sending) return;
    state.sending = true;
    area.value = "";
    showError("");
    window.aicode.send("POST", api + "/messages", { prompt: text }).catch(function (err) {
      if (!area.value.trim()) area.value = text;
      showError("Not sent: " + err.message);
    }).then(function () { state.sending = false; });
  }

  function onKey(event) {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    form.requestSubmit();
  }

  function interruptTurn() {
    state.stopping = true;
    show();
    showError("");
    window.aicode.send("POST", api + "/interrupt").catch(function (err) {
      state.stopping = false;
      show();
      showError("Could not interrupt: " + err.message);
    });
  }

  function endSession(event) {
    var button = event.currentTarget;
    button.disabled = true;
    showError("");
    window.aicode.send("DELETE", "/api/sessions/" + root.dataset.taskId).catch(function (err) {
      showError("Could not end the session: " + err.message);
    }).then(function () { button.disabled = false; });
  }

  root.addEventListener("aicode:event", function (event) { track(event.detail); show(); });
  root.addEventListener("aicode:live", function (event) {
    if (event.detail.type === "session.idle") {
      state.pending = 0;
      show();
    }
  });
  root.addEventListener("aicode:status", function (event) { state.status = event.detail; show(); });
  root.addEventListener("aicode:loaded", function () {
    if (state.pending === null) state.pending = 0;
    show();
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (!form) return;
    form.addEventListener("submit", sendPrompt);
    form.elements.prompt.addEventListener("keydown", onKey);
    var interrupt = form.querySelector("[data-interrupt]");
    if (interrupt) interrupt.addEventListener("click", interruptTurn);
    var end = form.querySelector("[data-end-session]");
    if (end) end.addEventListener("click", endSession);
  });
})();
