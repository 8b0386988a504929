/* Turns a task's events into feed entries, and text the agent is typing into provisional ones.
 *
 * Everything in an event came from the agent and is untrusted: text goes in as text nodes only,
 * assistant prose through the DOM-building markdown renderer. Every entry carries data-seq, so the
 * page (and its tests) can see exactly which events it shows; typing entries carry none (they are no
 * stored event) and give way to the stored message.
 */
(function () {
  "use strict";

  var KEY_ARGS = ["file_path", "path", "notebook_path", "command", "pattern", "url", "query", "description", "prompt"];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function entry(ev, tag, className) {
    var node = el(tag || "div", "ev " + (className || ""));
    node.dataset.seq = String(ev.seq);
    node.dataset.type = ev.type;
    return node;
  }

  function money(value) {
    value = Number(value || 0);
    return value > 0 && value < 1 ? "$" + value.toFixed(4) : "$" + value.toFixed(2);
  }

  function seconds(ms) {
    var s = Math.round(Number(ms || 0) / 100) / 10;
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }

  // The one argument that says what a tool call does: the file, command, pattern or URL. Paths
  // inside the checkout (mounted at /workspace) are shown relative to it, as the diff shows them.
  function keyArgument(input) {
    if (!input || typeof input !== "object") return "";
    for (var i = 0; i < KEY_ARGS.length; i++) {
      if (typeof input[KEY_ARGS[i]] === "string") return input[KEY_ARGS[i]].replace(/^\/workspace\//, "");
    }
    for (var key in input) {
      if (typeof input[key] === "string") return input[key];
    }
    return "";
  }

  function oneLine(text, max) {
    text = String(text).replace(/\s+/g, " ").trim();
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  function block(label, text, className) {
    var section = el("div", "tool-section " + (className || ""));
    section.appendChild(el("div", "tool-label", label));
    section.appendChild(el("pre", "tool-pre", text));
    return section;
  }

  function message(ev) {
    if (ev.data.kind === "thinking") {
      var details = entry(ev, "details", "ev-thinking");
      details.appendChild(el("summary", null, "Thinking"));
      details.appendChild(el("div", "thinking-text", ev.data.text));
      return details;
    }
    var node = entry(ev, "div", "ev-text");
    var body = el("div", "md");
    body.appendChild(window.aicodeMarkdown.render(ev.data.text || ""));
    node.appendChild(body);
    return node;
  }

  function toolCall(ev, calls) {
    var details = entry(ev, "details", "ev-tool");
    details.dataset.callId = ev.data.call_id || "";
    var summary = el("summary");
    summary.appendChild(el("span", "tool-name", ev.data.name || "tool"));
    summary.appendChild(el("span", "tool-arg mono", oneLine(keyArgument(ev.data.input), 140)));
    summary.appendChild(el("span", "tool-state", "running"));
    details.appendChild(summary);
    details.appendChild(block("Input", JSON.stringify(ev.data.input, null, 2)));
    if (ev.data.call_id) calls.set(ev.data.call_id, details);
    return details;
  }

  // A result goes inside its call's entry; returns null then, or a standalone entry for an orphan.
  function toolResult(ev, calls) {
    var ok = ev.data.ok !== false;
    var output = typeof ev.data.output === "string" ? ev.data.output : JSON.stringify(ev.data.output, null, 2);
    var result = block(ok ? "Result" : "Error", output || "(no output)", ok ? "" : "tool-section-error");
    result.dataset.seq = String(ev.seq);
    result.dataset.type = ev.type;
    if (ev.data.truncated) result.appendChild(el("p", "muted small", "Output truncated."));
    var call = calls.get(ev.data.call_id);
    if (!call) {
      var orphan = entry(ev, "div", "ev-tool-orphan" + (ok ? "" : " ev-error"));
      orphan.appendChild(result);
      return orphan;
    }
    call.appendChild(result);
    call.classList.add(ok ? "tool-ok" : "tool-failed");
    call.querySelector(".tool-state").textContent = ok ? "done" : "failed";
    return null;
  }

  var cancelledBy = null;  // who asked for the cancel the next "cancelled" status reports

  function status(ev) {
    var node = entry(ev, "div", "ev-status" + (ev.data.error ? " ev-error" : ""));
    node.appendChild(el("span", "badge badge-" + ev.data.status, ev.data.status));
    if (ev.data.error) node.appendChild(el("span", "ev-error-text", ev.data.error));
    if (ev.data.status === "cancelled") {
      // Steps the agent had under way when it was stopped are stopped too, not "running" for ever.
      document.querySelectorAll(".ev-tool:not(.tool-ok):not(.tool-failed) .tool-state").forEach(function (state) {
        state.textContent = "stopped";
      });
      node.appendChild(el("span", "ev-status-text", "Cancelled" + (cancelledBy ? " by " + cancelledBy : "") +
        "; the work so far is committed as partial."));
      cancelledBy = null;
    }
    return node;
  }

  // In a conversation (a live session's page) a prompt is labelled with its author alone, as the first is.
  function notice(ev, calls, options) {
    if (ev.data.code === "follow_up") {
      var prompt = entry(ev, "div", "ev-prompt");
      var who = options.conversation && ev.data.by ? ev.data.by :
        "Follow-up" + (ev.data.by ? " \u00b7 " + ev.data.by : "");
      prompt.appendChild(el("div", "ev-who", who));
      // Exactly as typed: a prompt is not markdown to render, and `*` or `#` in it mean what they say.
      prompt.appendChild(el("div", "prompt-text", ev.data.message || ""));
      return prompt;
    }
    if (ev.data.code === "cancel_requested") {
      cancelledBy = ev.data.by || null;
      var asked = entry(ev, "div", "ev-meta");
      asked.textContent = "Cancel asked by " + (ev.data.by || "someone") + "\u2026";
      return asked;
    }
    var level = ev.data.level || "info";
    var node = entry(ev, "div", "ev-notice level-" + level + (level === "error" ? " ev-error" : ""));
    node.appendChild(el("span", "notice-code mono", ev.data.code || level));
    node.appendChild(el("span", "notice-text", ev.data.message));
    return node;
  }

  function turnCompleted(ev) {
    var d = ev.data;
    var failed = d.status && d.status !== "succeeded" && d.status !== "success" && d.status !== "cancelled";
    var node = entry(ev, "div", "ev-meta ev-turn" + (failed || d.error ? " ev-error" : ""));
    var parts = ["Turn " + (d.status || "completed"), seconds(d.duration_ms), money(d.cost_usd)];
    if (d.num_turns) parts.splice(1, 0, d.num_turns + (d.num_turns === 1 ? " model turn" : " model turns"));
    node.appendChild(el("span", null, parts.join(" \u00b7 ")));
    if (d.error) node.appendChild(el("div", "ev-error-text", d.error));
    return node;
  }

  function commit(ev) {
    var d = ev.data;
    var node = entry(ev, "div", "ev-meta ev-commit");
    node.appendChild(el("span", null, "Committed "));
    node.appendChild(el("span", "mono", String(d.commit || "").slice(0, 10)));
    node.appendChild(el("span", null, " on " + (d.branch || "the task branch") + " \u2014 " +
      d.files_changed + (d.files_changed === 1 ? " file " : " files ")));
    node.appendChild(el("span", "count-add mono", "+" + d.additions));
    node.appendChild(el("span", "count-del mono", " \u2212" + d.deletions));
    if (d.partial) node.appendChild(el("span", "commit-partial", " (partial)"));
    var link = el("a", "ev-link", "view changes");
    link.href = "#changes";
    node.appendChild(link);
    return node;
  }

  function agentStarted(ev) {
    var d = ev.data;
    var text = "Agent started" + (d.model ? " \u00b7 " + d.model : "") + (d.agent_version ? " \u00b7 v" + d.agent_version : "");
    return Object.assign(entry(ev, "div", "ev-meta"), { textContent: text });
  }

  function usage(ev) {
    // Usage moves the counters at the top of the page; the entry is a marker only.
    var node = entry(ev, "span", "ev-usage");
    node.hidden = true;
    return node;
  }

  // The setup command: a header, its output lines as plain text, and how it ended.
  function setupStarted(ev) {
    var node = entry(ev, "div", "ev-meta ev-setup");
    node.appendChild(el("span", null, "Setup: "));
    node.appendChild(el("span", "mono", ev.data.command));
    return node;
  }

  function setupOutput(ev) {
    return Object.assign(entry(ev, "pre", "ev-setup-line mono"), { textContent: ev.data.text });
  }

  function setupFinished(ev) {
    var d = ev.data;
    var text = d.ok ? "Setup finished in " + seconds(d.duration_ms) :
      "Setup failed" + (d.exit_code !== null && d.exit_code !== undefined ? " (exit code " + d.exit_code + ")" : "");
    return Object.assign(entry(ev, "div", "ev-meta" + (d.ok ? "" : " ev-error")), { textContent: text });
  }

  function pushed(ev) {
    var d = ev.data;
    var text = "Pushed " + String(d.commit || "").slice(0, 12) + " to " + d.remote_branch +
      (d.forced ? " (replaced after a rebase)" : "");
    return Object.assign(entry(ev, "div", "ev-meta"), { textContent: text });
  }

  function pullRequest(ev) {
    var d = ev.data;
    var node = entry(ev, "div", "ev-meta");
    node.appendChild(el("span", null, (d.reused ? "Pull request already open: " : "Opened pull request ")));
    var link = el("a", null, "#" + d.number + (d.draft ? " (draft)" : ""));
    if (/^https?:\/\//.test(String(d.url || ""))) link.href = d.url;
    link.rel = "noopener";
    link.target = "_blank";
    node.appendChild(link);
    return node;
  }

  function rebased(ev) {
    var d = ev.data;
    var text = "Rebased " + d.replayed + (d.replayed === 1 ? " commit" : " commits") + " onto " + d.base_branch +
      " (" + String(d.onto || "").slice(0, 12) + ")";
    return Object.assign(entry(ev, "div", "ev-meta"), { textContent: text });
  }

  function other(ev) {
    var node = entry(ev, "div", "ev-meta");
    node.appendChild(el("span", "mono", ev.type + " "));
    node.appendChild(el("span", null, oneLine(JSON.stringify(ev.data), 300)));
    return node;
  }

  var RENDERERS = {
    "message": message, "tool.call": toolCall, "tool.result": toolResult, "task.status": status,
    "notice": notice, "turn.completed": turnCompleted, "git.commit": commit, "agent.started": agentStarted,
    "usage": usage, "setup.started": setupStarted, "setup.output": setupOutput, "setup.finished": setupFinished,
    "git.push": pushed, "pull_request": pullRequest, "git.rebase": rebased,
  };

  // The entry for `ev`, or null when it was placed inside an earlier entry (a tool result).
  // `options.conversation`: the page is a live session's.
  function render(ev, calls, options) {
    var renderer = RENDERERS[ev.type] || other;
    return renderer(ev, calls, options || {});
  }

  // Text as the agent types it (`message.delta`, live only): one provisional entry per message id at
  // the end of `feed`, replaced by the stored message with that id, dropped if none comes (the turn
  // was interrupted mid-sentence).
  function Typing(feed) {
    this.feed = feed;
    this.open = new Map();
  }

  Typing.prototype.delta = function (data) {
    var key = String(data.message_id || "");
    var node = this.open.get(key);
    if (!node) {
      node = el("div", "ev ev-typing");
      node.dataset.typing = key;
      node.setAttribute("aria-live", "polite");
      node.appendChild(el("span", "sr-only", "The agent is typing: "));
      node.appendChild(el("span", "typing-text"));
      this.feed.appendChild(node);
      this.open.set(key, node);
    }
    node.querySelector(".typing-text").appendChild(document.createTextNode(String(data.text || "")));
  };

  // Put `node`, the entry of the stored message `ev`, in place of its typing entry; false if it had none.
  Typing.prototype.settle = function (ev, node) {
    if (ev.type !== "message" || ev.data.kind === "thinking") return false;
    var key = String(ev.data.message_id || "");
    var typed = this.open.get(key);
    if (!typed) return false;
    this.open.delete(key);
    typed.replaceWith(node);
    return true;
  };

  Typing.prototype.clear = function () {
    this.open.forEach(function (node) { node.remove(); });
    this.open.clear();
  };

  // The stream's event names: the stored events' and the live-only ones (no seq, never replayed).
  var LIVE_TYPES = ["message.delta", "session.idle"];

  window.aicodeFeed = {
    render: render, types: Object.keys(RENDERERS).concat(LIVE_TYPES),
    typing: function (feed) { return new Typing(feed); },
  };
})();
