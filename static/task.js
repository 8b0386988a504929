/* The live task page: the event feed (latest events first, earlier on demand), text as the agent
 * types it, a live stream that resumes where it left off after a drop, the counters at the top,
 * follow-up, cancel and the diff. A live session's page adds its conversation box (static/session.js),
 * which learns of every event through DOM events on #task: `aicode:event` (a stored event shown),
 * `aicode:live` (a live-only one), `aicode:status` and `aicode:loaded` (the first events are shown).
 */
(function () {
  "use strict";

  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];
  var PAGE = 200;
  var root = document.getElementById("task");
  if (!root) return;

  var api = "/api/tasks/" + root.dataset.taskId;
  var feed = document.getElementById("feed");
  var $ = function (selector) { return root.querySelector(selector); };
  var feedOptions = { conversation: root.dataset.kind === "session", firstPrompt: root.dataset.firstPrompt === "1",
    canRun: root.dataset.canRun === "1" };
  var state = {
    status: root.dataset.status, first: null, last: 0, source: null, calls: new Map(), queue: Promise.resolve(),
    retries: 0, reconnectTimer: null, refreshTimer: null, head: root.dataset.headCommit || "",
    startedAt: root.dataset.startedAt ? new Date(root.dataset.startedAt) : null,
    finishedAt: root.dataset.finishedAt ? new Date(root.dataset.finishedAt) : null,
    task: null, turnUsage: null, typing: window.aicodeFeed.typing(feed),
  };

  function isTerminal(status) { return TERMINAL.indexOf(status) >= 0; }

  function tell(name, detail) {
    root.dispatchEvent(new CustomEvent("aicode:" + name, { detail: detail }));
  }

  // -- the counters and the status -------------------------------------------------------------

  function count(n) {
    n = Number(n || 0);
    if (n >= 1000000) return (n / 1000000).toFixed(1) + "M";
    return n >= 10000 ? (n / 1000).toFixed(1) + "k" : n.toLocaleString("en-US");
  }

  // As aicode/web/templating.py `seconds`.
  function span(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  // -- the turns' run time ("Elapsed") and model turns: the page came with them up to event
  // `clock.seq` (aicode/web/turn_clock.py), later events move them by the same rules ------------

  var clock = JSON.parse(root.dataset.clock || "{}");
  clock.seq = clock.seq || 0;
  clock.run_s = clock.run_s || 0;
  clock.waiting = clock.waiting || 0;
  clock.model_turns = clock.model_turns || 0;
  clock.openSince = clock.open_since ? new Date(clock.open_since) : null;
  // The server's clock minus the browser's: a running turn's time is counted on the server's clock.
  clock.skew = clock.now ? new Date(clock.now) - new Date() : 0;

  function closeTurn(ts) {
    if (clock.openSince) clock.run_s += Math.max(0, (ts - clock.openSince) / 1000);
    clock.openSince = null;
  }

  function stepClock(ev) {
    if (!(ev.seq > clock.seq) || !ev.ts) return;
    clock.seq = ev.seq;
    var ts = new Date(ev.ts);
    var d = ev.data || {};
    var session = feedOptions.conversation;
    if (ev.type === "task.status" && d.status === "running") {
      clock.running = true;
      if (!clock.openSince && (!session || clock.waiting > 0)) clock.openSince = ts;
    } else if (ev.type === "task.status" && isTerminal(d.status)) {
      closeTurn(ts);
      clock.running = false;
      clock.waiting = 0;
    } else if (ev.type === "notice" && d.code === "follow_up") {
      clock.waiting += 1;
      if (clock.running && !clock.openSince) clock.openSince = ts;
    } else if (ev.type === "turn.completed") {
      clock.model_turns += Math.max(0, Number(d.num_turns) || 0);
      if (session) {
        closeTurn(ts);
        clock.waiting = Math.max(0, clock.waiting - 1);
        if (clock.waiting && clock.running) clock.openSince = ts;
      }
    }
    showClock();
  }

  function showClock() {
    var now = new Date(Date.now() + clock.skew);
    var running = clock.openSince ? Math.max(0, (now - clock.openSince) / 1000) : 0;
    $("[data-field=elapsed]").textContent = span(clock.run_s + running);
    var created = new Date(root.dataset.createdAt);
    $("[data-field=elapsed-stat]").title = "Time the turns ran; " +
      span(((state.finishedAt || now) - created) / 1000) + " since submitted";
    $("[data-field=model-turns]").textContent = "\u00b7 " + clock.model_turns +
      (clock.model_turns === 1 ? " model turn" : " model turns");
    // Prompts: the turns run, and the one running or waiting for a node.
    if (state.task) {
      $("[data-field=turns]").textContent = String(state.task.turns +
        (clock.openSince || state.status === "queued" ? 1 : 0));
    }
  }

  // The task's error stands above the feed only while the feed does not show it already.
  function showTaskError(text) {
    var error = $("[data-field=error]");
    error.textContent = text || "";
    error.hidden = !text || window.aicodeFeed.showsError(feed, text);
  }

  function setLive(mode) {
    var live = $("[data-live]");
    var labels = { connecting: "Connecting\u2026", live: "Live", reconnecting: "Reconnecting\u2026", ended: "Ended" };
    live.dataset.state = mode;
    live.textContent = labels[mode];
  }

  // The tab's title says the state, so a task left in a background tab shows when it ends.
  var baseTitle = document.title;

  function setStatus(status) {
    state.status = status;
    root.dataset.status = status;
    document.title = (isTerminal(status) ? "" : "● ") + status + " · " + baseTitle;
    var badge = $("[data-field=status] .badge");
    badge.className = "badge badge-" + status;
    badge.textContent = status;
    var cancel = $("[data-cancel]");
    if (cancel) cancel.hidden = isTerminal(status);
    $("[data-follow-up] button[type=submit]").disabled = !isTerminal(status);
    $("[data-follow-hint]").textContent = isTerminal(status) ? "" : "Available once this turn ends.";
    // A session takes a prompt while it runs; a task only once its turn has ended.
    feed.querySelectorAll("[data-retry]").forEach(function (button) {
      button.disabled = !isTerminal(status) && !feedOptions.conversation;
    });
    tell("status", status);
  }

  // Takes the task's counters from GET /api/tasks/{id} (the source of truth for totals).
  function applyTask(task) {
    setStatus(task.status);
    state.startedAt = task.started_at ? new Date(task.started_at) : null;
    state.finishedAt = task.finished_at && isTerminal(task.status) ? new Date(task.finished_at) : null;
    state.task = task;
    showClock();
    showTotals();
    showTaskError(task.error);
    if (task.head_commit && task.head_commit !== state.head) {
      state.head = task.head_commit;
      loadDiff();
    }
    showPublished(task);
    return task;
  }

  // -- push and pull request -------------------------------------------------------------------

  function showPublished(task) {
    var push = $("[data-push]");
    var open = $("[data-open-pr]");
    var link = $("[data-pr-link]");
    var download = $("[data-download-patch]");
    if (push) push.disabled = !task.head_commit;
    if (download) download.hidden = !task.head_commit;
    if (open) {
      open.disabled = !task.head_commit;
      open.hidden = !!task.pull_request;
    }
    if (task.pull_request) {
      link.href = task.pull_request.url;
      link.textContent = "Pull request #" + task.pull_request.number + (task.pull_request.draft ? " (draft)" : "");
      link.hidden = false;
    }
    var note = $("[data-publish-note]");
    if (task.remote_branch && task.pushed_commit) {
      note.textContent = "Pushed to " + task.remote_branch + " (" + task.pushed_commit.slice(0, 12) + ").";
      note.hidden = false;
    }
  }

  function publish(button, path, body) {
    button.disabled = true;
    showError("[data-publish-error]", "");
    window.aicode.send("POST", api + path, body).then(function () {
      return window.aicode.getJSON(api).then(applyTask);
    }).catch(function (err) {
      showError("[data-publish-error]", err.message);
    }).then(function () { button.disabled = !(state.task || {}).head_commit && !state.head; });
  }

  // The task's totals cover finished turns; while a turn runs, its `usage` events (running totals
  // of that turn) are added on top, so tokens and cost move as the agent works.
  function showTotals() {
    if (!state.task) return;
    // Once the turn has ended, the task row includes it: adding its usage again would count it twice.
    var turn = (!isTerminal(state.status) && state.turnUsage) || {};
    $("[data-field=tokens]").textContent = count(state.task.input_tokens + (turn.input_tokens || 0)) + " / " +
      count(state.task.output_tokens + (turn.output_tokens || 0));
    $("[data-field=cost]").textContent = window.aicodeFeed.money(state.task.cost_usd + (turn.cost_usd || 0));
  }

  function refreshTask() {
    return window.aicode.getJSON(api).then(applyTask);
  }

  function refreshSoon() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(function () { refreshTask().catch(function () {}); }, 250);
  }

  // -- the feed --------------------------------------------------------------------------------

  function nearBottom() {
    return feed.scrollHeight - feed.scrollTop - feed.clientHeight < 80;
  }

  function append(ev) {
    var follow = nearBottom();
    var node = window.aicodeFeed.render(ev, state.calls, feedOptions);
    if (node && !state.typing.settle(ev, node)) window.aicodeFeed.place(feed, node);
    stepClock(ev);
    state.last = ev.seq;
    if (state.first === null) state.first = ev.seq;
    if (follow) feed.scrollTop = feed.scrollHeight;
    if (ev.type === "usage") {
      state.turnUsage = ev.data;
      showTotals();
    }
    if (["turn.completed", "git.commit", "task.status", "agent.started"].indexOf(ev.type) >= 0) refreshSoon();
    // Typed text that no stored message took up by the turn's end was cut off: it is gone.
    if (ev.type === "turn.completed" || (ev.type === "task.status" && isTerminal(ev.data.status))) state.typing.clear();
    // A session records each turn on the task row as it ends (no status change): its usage is in the totals then.
    if (ev.type === "turn.completed" && feedOptions.conversation) {
      state.turnUsage = null;
      showTotals();
    }
    if (ev.type === "task.status") {
      // A new turn starts from the task row's totals; an ended one is in them (refreshed at once).
      if (!isTerminal(ev.data.status)) state.turnUsage = null;
      else refreshTask().catch(function () {});
      setStatus(ev.data.status);
      if (isTerminal(ev.data.status)) endStream();
    }
    tell("event", ev);
  }

  // A live-only event (no seq): text being typed, or a session ready for its next prompt.
  function showLive(ev) {
    if (ev.type === "message.delta") {
      var follow = nearBottom();
      state.typing.delta(ev.data || {});
      if (follow) feed.scrollTop = feed.scrollHeight;
    }
    if (ev.type === "session.idle") refreshSoon(); // the turn is on the task row now
    tell("live", ev);
  }

  // In seq order, once each: a replayed event is skipped, a gap is filled from the JSON API first.
  // Live-only events keep their place in the queue, so typed text never overtakes the message before it.
  function ingest(ev) {
    if (typeof ev.seq !== "number") {
      showLive(ev);
      return Promise.resolve();
    }
    if (ev.seq <= state.last) return Promise.resolve();
    var fill = Promise.resolve([]);
    if (ev.seq > state.last + 1) {
      fill = window.aicode.getJSON(api + "/events?after=" + state.last + "&before=" + ev.seq + "&limit=5000");
    }
    return fill.then(function (missing) {
      missing.forEach(function (earlier) { if (earlier.seq > state.last) append(earlier); });
      if (ev.seq > state.last) append(ev);
    });
  }

  function enqueue(ev) {
    state.queue = state.queue.then(function () { return ingest(ev); }).catch(function (err) {
      console.error("aicode: could not show event", err);
    });
  }

  function loadEarlier() {
    var button = $("[data-load-earlier]");
    button.disabled = true;
    return window.aicode.getJSON(api + "/events?last=" + PAGE + "&before=" + state.first).then(function (events) {
      var chunk = document.createDocumentFragment();
      // A chunk starts mid-task: what it knows of its turns is its own (and it offers no Retry).
      var options = { conversation: feedOptions.conversation, firstPrompt: feedOptions.firstPrompt };
      events.forEach(function (ev) {
        var node = window.aicodeFeed.render(ev, state.calls, options);
        if (node) window.aicodeFeed.place(chunk, node);
      });
      var height = feed.scrollHeight;
      feed.insertBefore(chunk, feed.querySelector(":scope > .ev[data-seq], :scope > .ev-details-group"));
      feed.scrollTop += feed.scrollHeight - height;
      if (events.length) state.first = events[0].seq;
      button.hidden = !(state.first > 1);
    }).finally(function () { button.disabled = false; });
  }

  // -- the live stream -------------------------------------------------------------------------

  function openStream() {
    if (state.source) return;
    clearTimeout(state.reconnectTimer);
    setLive(state.retries ? "reconnecting" : "connecting");
    // `after` covers a fresh connection; the browser's own reconnects send Last-Event-ID instead.
    var source = new EventSource(api + "/events?after=" + state.last);
    state.source = source;
    source.onopen = function () { state.retries = 0; setLive("live"); };
    window.aicodeFeed.types.forEach(function (type) {
      source.addEventListener(type, function (message) { enqueue(JSON.parse(message.data)); });
    });
    source.onerror = function () { streamTrouble(source); };
  }

  // The stream broke or ended: stop if the task is over and shown in full, else reconnect.
  function streamTrouble(source) {
    if (source !== state.source) return;
    setLive("reconnecting");
    state.queue.then(refreshTask).then(function (task) {
      if (isTerminal(task.status) && task.last_seq <= state.last) {
        endStream();
      } else if (source.readyState === EventSource.CLOSED) {
        state.source = null; // the browser gave up (an HTTP error): retry with backoff ourselves
        var delay = Math.min(10000, 1000 * Math.pow(2, state.retries++));
        state.reconnectTimer = setTimeout(openStream, delay);
      }
    }).catch(function () {
      if (source.readyState === EventSource.CLOSED) {
        state.source = null;
        state.reconnectTimer = setTimeout(openStream, Math.min(10000, 1000 * Math.pow(2, state.retries++)));
      }
    });
  }

  function endStream() {
    if (state.source) state.source.close();
    state.source = null;
    clearTimeout(state.reconnectTimer);
    setLive("ended");
  }

  // -- actions ---------------------------------------------------------------------------------

  function showError(selector, message) {
    var node = $(selector);
    node.textContent = message || "";
    node.hidden = !message;
  }

  // Send `prompt` as the task's next turn; resolves once the server took it.
  function sendFollowUp(prompt) {
    showError("[data-follow-error]", "");
    return window.aicode.send("POST", api + "/messages", { prompt: prompt }).then(function (task) {
      state.finishedAt = null;
      applyTask(task);
      openStream();
      return task;
    });
  }

  function followUp(event) {
    event.preventDefault();
    var form = event.currentTarget;
    var prompt = form.elements.prompt.value.trim();
    if (!prompt) return;
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    sendFollowUp(prompt).then(function () {
      form.elements.prompt.value = "";
    }).catch(function (err) {
      button.disabled = !isTerminal(state.status);
      showError("[data-follow-error]", err.message);
    });
  }

  // Retry on a failed turn: its prompt again (the task's own for the first turn), as a follow-up.
  function retry(event) {
    var button = event.target.closest("[data-retry]");
    if (!button) return;
    button.disabled = true;
    var task = state.task ? Promise.resolve(state.task) : window.aicode.getJSON(api);
    task.then(function (t) {
      return sendFollowUp(button.aicodePrompt === null ? t.prompt : button.aicodePrompt);
    }).catch(function (err) {
      button.disabled = false;
      showError("[data-follow-error]", "Could not retry: " + err.message);
    });
  }

  function askCancel() {
    showError("[data-cancel-error]", "");
    document.getElementById("cancel-dialog").showModal();
  }

  function cancelClosed(event) {
    if (event.currentTarget.returnValue !== "cancel") return;
    window.aicode.send("POST", api + "/cancel").then(applyTask).catch(function (err) {
      showError("[data-field=error]", "Could not cancel: " + err.message);
    });
  }

  // The Changes section is static/review.js's: it loads and draws the diff and its comments.
  function loadDiff() {
    return window.aicodeReview.load();
  }

  // A turn queued from elsewhere on the page (review comments sent): follow it as a follow-up.
  function queued(event) {
    state.finishedAt = null;
    applyTask(event.detail);
    openStream();
  }

  // -- start -----------------------------------------------------------------------------------

  function start() {
    $("[data-follow-up]").addEventListener("submit", followUp);
    var cancel = $("[data-cancel]");
    if (cancel) cancel.addEventListener("click", askCancel);
    var push = $("[data-push]");
    if (push) push.addEventListener("click", function () { publish(push, "/push"); });
    var open = $("[data-open-pr]");
    if (open) open.addEventListener("click", function () { publish(open, "/pull-request", {}); });
    document.getElementById("cancel-dialog").addEventListener("close", cancelClosed);
    $("[data-load-earlier]").addEventListener("click", loadEarlier);
    root.addEventListener("aicode:queued", queued);
    feed.addEventListener("click", retry);
    setInterval(showClock, 1000);
    window.aicode.getJSON(api + "/events?last=" + PAGE).then(function (events) {
      events.forEach(append);
      $("[data-load-earlier]").hidden = !(state.first > 1);
      $("[data-feed-loading]").hidden = true;
      feed.scrollTop = feed.scrollHeight;
      showTaskError($("[data-field=error]").textContent);
      tell("loaded", state.status);
      if (isTerminal(state.status)) setLive("ended"); else openStream();
    });
    if (state.head) loadDiff();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
