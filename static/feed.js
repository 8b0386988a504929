/* Turns a task's events into feed entries, and text the agent is typing into provisional ones.
 *
 * Everything in an event came from the agent and is untrusted: text goes in as text nodes only,
 * assistant prose through the DOM-building markdown renderer. Every entry carries data-seq, so the
 * page (and its tests) can see exactly which events it shows; typing entries carry none (they are no
 * stored event) and give way to the stored message. Notices read as sentences, never as their codes;
 * technical ones are folded into "N details"; a turn's error is shown once, with advice where there is
 * any, and a failed turn offers Retry.
 */
(function () {
  "use strict";

  var KEY_ARGS = ["file_path", "path", "notebook_path", "command", "pattern", "url", "query", "description", "prompt"];
  var DIFF_LINES = 20;  // a file write or edit shows this many -/+ lines, then "… N more lines"

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

  // As aicode/money.py `usd` (the pages and the CLI): "$0.00", "$0.0123", "$1,234.50".
  function money(value) {
    value = Number(value || 0);
    if (value > 0 && value < 1) return "$" + value.toFixed(4);
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
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

  function lines(text) {
    text = String(text === undefined || text === null ? "" : text);
    if (text === "") return [];
    return text.replace(/\n$/, "").split("\n");
  }

  // The -/+ lines of a file write or edit: a small diff of what the agent sent, not of the file (the
  // Changes section has that), cut after DIFF_LINES.
  function changeLines(name, input) {
    if (name === "Write" && typeof input.content === "string") {
      return lines(input.content).map(function (line) { return ["+", line]; });
    }
    var edits = name === "MultiEdit" && Array.isArray(input.edits) ? input.edits :
      (name === "Edit" && (typeof input.old_string === "string" || typeof input.new_string === "string") ? [input] : null);
    if (!edits) return null;
    var out = [];
    edits.forEach(function (edit, i) {
      if (!edit || typeof edit !== "object") return;
      if (i > 0) out.push(["@", "\u22ef"]);
      lines(edit.old_string).forEach(function (line) { out.push(["-", line]); });
      lines(edit.new_string).forEach(function (line) { out.push(["+", line]); });
    });
    return out;
  }

  var CHANGE_KINDS = { add: "created", update: "changed", "delete": "deleted" };

  function diffSection(name, input) {
    var changes = changeLines(name, input);
    var section = el("div", "tool-section tool-diff-section");
    if (changes === null) {
      // Codex reports only which file changed and how (kind); a Delete names the file alone.
      var kind = CHANGE_KINDS[input.kind] || (name === "Delete" ? "deleted" : null);
      if (!kind) return null;
      section.appendChild(el("p", "tool-change muted small", "File " + kind + "."));
      return section;
    }
    var box = el("div", "tool-diff mono");
    changes.slice(0, DIFF_LINES).forEach(function (change) {
      var row = el("div", "tool-diff-line " + (change[0] === "+" ? "tool-diff-add" : change[0] === "-" ? "tool-diff-del" : "tool-diff-gap"));
      row.appendChild(el("span", "tool-diff-sign", change[0] === "@" ? " " : change[0]));
      row.appendChild(el("span", "tool-diff-text", change[1]));
      box.appendChild(row);
    });
    if (!changes.length) box.appendChild(el("div", "tool-diff-line tool-diff-gap", "(empty)"));
    section.appendChild(box);
    var more = changes.length - DIFF_LINES;
    if (more > 0) section.appendChild(el("p", "muted small tool-diff-more", "\u2026 " + more + (more === 1 ? " more line" : " more lines")));
    return section;
  }

  // What a call was asked to do: file writes and edits as a small diff, a shell command as code, the
  // rest as JSON (on one line when it is short).
  function toolInput(name, input) {
    if (input && typeof input === "object" && ["Write", "Edit", "MultiEdit", "Delete"].indexOf(name) >= 0) {
      var diff = diffSection(name, input);
      if (diff) return diff;
    }
    if (name === "Bash" && input && typeof input.command === "string") {
      var section = block("Command", input.command, "tool-command");
      section.querySelector(".tool-pre").classList.add("mono");
      return section;
    }
    var json = JSON.stringify(input);
    return block("Input", json && json.length <= 120 ? json : JSON.stringify(input, null, 2));
  }

  function toolCall(ev, calls) {
    var details = entry(ev, "details", "ev-tool");
    details.dataset.callId = ev.data.call_id || "";
    var summary = el("summary");
    summary.appendChild(el("span", "tool-name", ev.data.name || "tool"));
    summary.appendChild(el("span", "tool-arg mono", oneLine(keyArgument(ev.data.input), 140)));
    summary.appendChild(el("span", "tool-state", "running"));
    details.appendChild(summary);
    var input = toolInput(ev.data.name, ev.data.input);
    details.appendChild(input);
    // A file change is worth a glance without a click; other calls stay folded.
    if (input.classList.contains("tool-diff-section")) details.open = true;
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

  // -- the turn being shown: its errors (each once), its commit, its prompt (for Retry) ------------

  // What the feed knows of the turn it shows, kept on the render options (one set per page, a fresh one
  // per chunk of earlier events): the errors it has shown, whether its work was committed ("partial",
  // "full" or "none"), who asked for a cancel, and its prompt (null: the task's own; undefined: unknown).
  function turnOf(options, ev) {
    if (!options.turn) {
      var fromStart = ev.seq === 1;
      options.turn = { errors: [], committed: null, cancelledBy: null, prompt: fromStart ? null : undefined,
        waiting: fromStart && options.firstPrompt ? [null] : [] };
    }
    return options.turn;
  }

  function newTurn(turn) {
    turn.errors = [];
    turn.committed = null;
  }

  function normal(text) {
    return String(text || "").toLowerCase().replace(/\s+/g, " ").trim();
  }

  function sameError(a, b) {
    return a.indexOf(b.slice(0, 60)) >= 0 || b.indexOf(a.slice(0, 60)) >= 0;
  }

  // True the first time a turn reports `text`: one failure arrives as a notice, as the turn's error and
  // as the task's, each a little differently worded (or cut), so "the same" is one containing the
  // other's start.
  function firstShowing(turn, text) {
    var t = normal(text);
    if (!t) return false;
    var seen = turn.errors.some(function (e) { return sameError(e, t); });
    turn.errors.push(t);
    return !seen;
  }

  // What the person can do about an error, when there is anything: [text, link or null].
  var ADVICE = [
    [/\b40[13]\b|x-api-key|api[ _-]?key|authenticat|unauthori[sz]ed|\bno \w+ key\b|credential/i,
      ["The model key was refused or is missing: check it under ", { href: "/settings#keys-head", text: "Settings \u2192 Model keys" }]],
    [/\b429\b|\b529\b|rate.?limit|overloaded/i, ["The model API is busy or rate-limited: retry in a few minutes."]],
    [/\b402\b|budget|billing|spending limit|credit balance/i,
      ["The spending budget is used up: an admin can raise a person's or the workspace's monthly budget; a task's own limit (max_cost_usd) is set when it is created."]],
    [/timed out|timeout|turn limit|max_turns|maximum number of turns/i,
      ["The turn hit a limit of the task (its time limit, timeout_s, or max_turns, both set when a task is created): send a follow-up to go on from where it stopped."]],
  ];

  function advice(text) {
    for (var i = 0; i < ADVICE.length; i++) {
      if (!ADVICE[i][0].test(text)) continue;
      var parts = ADVICE[i][1];
      var node = el("span", "ev-advice", parts[0]);
      if (parts[1]) {
        var link = el("a", null, parts[1].text);
        link.href = parts[1].href;
        node.appendChild(link);
        node.appendChild(document.createTextNode("."));
      }
      return node;
    }
    return null;
  }

  function errorText(text, lead) {
    var node = el("div", "ev-error-text", (lead ? lead + ": " : "") + text);
    node.dataset.error = normal(text);
    var help = advice(text);
    if (help) node.appendChild(help);
    return node;
  }

  // A failed turn's way to try again: the same prompt as a follow-up (static/task.js sends it).
  function retryButton(options, prompt) {
    if (!options.canRun || prompt === undefined) return null;
    var button = el("button", "btn btn-small ev-retry", "Retry");
    button.type = "button";
    button.dataset.retry = "";
    button.aicodePrompt = prompt;
    return button;
  }

  function status(ev, calls, options) {
    var d = ev.data;
    var turn = turnOf(options, ev);
    if (d.status === "queued") newTurn(turn);
    var node = entry(ev, "div", "ev-status" + (d.error ? " ev-error" : ""));
    node.appendChild(el("span", "badge badge-" + d.status, d.status));
    if (d.error && firstShowing(turn, d.error)) node.appendChild(errorText(d.error));
    if (d.status === "failed" && !options.conversation) {
      var retry = retryButton(options, turn.prompt);
      if (retry) node.appendChild(retry);
    }
    if (d.status === "cancelled") {
      // Steps the agent had under way when it was stopped are stopped too, not "running" for ever.
      document.querySelectorAll(".ev-tool:not(.tool-ok):not(.tool-failed) .tool-state").forEach(function (state) {
        state.textContent = "stopped";
      });
      var outcome = turn.committed === "partial" ? "; the work so far is committed as partial." :
        turn.committed === "none" ? "; nothing had changed, so nothing was committed." : ".";
      node.appendChild(el("span", "ev-status-text", "Cancelled" + (turn.cancelledBy ? " by " + turn.cancelledBy : "") + outcome));
      turn.cancelledBy = null;
    }
    return node;
  }

  // -- notices: in words, or folded away ------------------------------------------------------

  function sentence(text) {
    text = String(text || "").trim();
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?\u2026)]$/.test(text) ? text : text + ".";
  }

  // Notice codes in words (a function gets the notice's data); other codes show their message, which
  // the server writes for people. A code itself is never the text.
  var NOTICES = {
    no_changes: "No files changed in this turn, so nothing was committed.",
    files_not_committed: function (d) {
      return sentence("Some files were left out of the commit: " + String(d.message || "").replace(/^not committed:\s*/, ""));
    },
    state_not_stored: function (d) { return sentence("This turn's state could not be stored on the server: " + d.message); },
    interrupted: "The turn was interrupted; its work so far is committed as partial.",
    session_ended: "The live session ended; a follow-up starts it again where it left off.",
    egress_refused: function (d) { return sentence("Blocked: " + d.message); },
  };
  // Claude Code's API failures (its message `error`): a plain lead before the API's own words.
  var API_ERRORS = {
    authentication_failed: "The model API refused the key", billing_error: "The model provider refused the call (billing)",
    rate_limit: "The model API is rate-limiting", invalid_request: "The model API refused the request",
    server_error: "The model API failed", unknown: "The model API call failed",
  };
  // Technical notices: kept, folded into "N details".
  var TECHNICAL = ["unknown_event", "unknown_block", "unknown_item", "unparsed_event", "agent_output", "line_truncated"];

  function technical(d) {
    var message = String(d.message || "");
    if (TECHNICAL.indexOf(d.code) >= 0 || d.raw !== undefined) return true;
    if (d.level === "error") return false;
    // A rate limit with room left; an agent's own informational line, whose text is its code
    // ("task_started: wait", "hook_response").
    return (d.code === "rate_limit" && d.level === "info") ||
      (d.level === "info" && !!d.code && (message === d.code || message.indexOf(d.code + ":") === 0));
  }

  function noticeText(d) {
    var known = NOTICES[d.code];
    if (typeof known === "function") return known(d);
    if (known) return known;
    return d.message ? sentence(d.message) : "The agent sent a notice without text.";
  }

  // In a conversation (a live session's page) a prompt is labelled with its author alone, as the first is.
  function notice(ev, calls, options) {
    var d = ev.data;
    var turn = turnOf(options, ev);
    if (d.code === "follow_up") {
      if (options.conversation) turn.waiting.push(d.message || "");
      else turn.prompt = d.message || "";
      var prompt = entry(ev, "div", "ev-prompt");
      var who = options.conversation && d.by ? d.by : "Follow-up" + (d.by ? " \u00b7 " + d.by : "");
      prompt.appendChild(el("div", "ev-who", who));
      // Exactly as typed: a prompt is not markdown to render, and `*` or `#` in it mean what they say.
      prompt.appendChild(el("div", "prompt-text", d.message || ""));
      return prompt;
    }
    if (d.code === "cancel_requested") {
      turn.cancelledBy = d.by || null;
      var asked = entry(ev, "div", "ev-meta");
      asked.textContent = "Cancel asked by " + (d.by || "someone") + "\u2026";
      return asked;
    }
    if (d.code === "no_changes") turn.committed = "none";
    var level = d.level || "info";
    var node = entry(ev, "div", "ev-notice level-" + level);
    node.dataset.code = d.code || "";
    if (technical(d) || (level === "error" && !firstShowing(turn, d.message))) {
      // Folded: an odd line of the agent's, or an error this turn already shows.
      node.classList.add("ev-detail");
      node.appendChild(el("span", "notice-text", sentence(d.message || d.code)));
      return node;
    }
    if (level === "error") {
      node.classList.add("ev-error");
      node.appendChild(errorText(d.message || "", API_ERRORS[d.code]));
      return node;
    }
    node.appendChild(el("span", "notice-text", noticeText(d)));
    return node;
  }

  function turnCompleted(ev, calls, options) {
    var d = ev.data;
    var turn = turnOf(options, ev);
    var failed = d.status && d.status !== "succeeded" && d.status !== "success" && d.status !== "cancelled";
    var node = entry(ev, "div", "ev-meta ev-turn" + (failed || d.error ? " ev-error" : ""));
    var parts = ["Turn " + (d.status || "completed"), seconds(d.duration_ms), money(d.cost_usd)];
    if (d.num_turns) parts.splice(1, 0, d.num_turns + (d.num_turns === 1 ? " model turn" : " model turns"));
    node.appendChild(el("span", null, parts.join(" \u00b7 ")));
    if (d.error && firstShowing(turn, d.error)) node.appendChild(errorText(d.error));
    if (options.conversation) {
      // A session's turns end here (it stays running): the next prompt starts a new one.
      var prompt = turn.waiting.length ? turn.waiting.shift() : undefined;
      var retry = failed ? retryButton(options, prompt) : null;
      if (retry) node.appendChild(retry);
      newTurn(turn);
    }
    return node;
  }

  function commit(ev, calls, options) {
    var d = ev.data;
    turnOf(options, ev).committed = d.partial ? "partial" : "full";
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

  // The entry for `ev`, or null when it was placed inside an earlier entry (a tool result). `options`,
  // the same object for every event of one run of the feed: `conversation` (the page is a live
  // session's), `firstPrompt` (the task has a prompt of its own), `canRun` (Retry is offered); the feed
  // keeps what it knows of the current turn there too.
  function render(ev, calls, options) {
    var renderer = RENDERERS[ev.type] || other;
    return renderer(ev, calls, options || {});
  }

  // Put an entry at the end of `parent` (the feed, or a chunk of earlier events): technical ones gather
  // in one folded "N details" group per run of consecutive ones (hidden usage markers do not break a run).
  function place(parent, node) {
    if (!node.classList.contains("ev-detail")) {
      parent.appendChild(node);
      return;
    }
    var group = parent.lastElementChild;
    while (group && group.classList.contains("ev-usage")) group = group.previousElementSibling;
    if (!group || !group.classList.contains("ev-details-group")) {
      group = el("details", "ev ev-details-group");
      group.appendChild(el("summary"));
      parent.appendChild(group);
    }
    group.appendChild(node);
    var count = group.querySelectorAll(".ev-detail").length;
    group.querySelector("summary").textContent = count + (count === 1 ? " detail" : " details");
  }

  // Whether the feed already shows `text` as an error (the page's alert then stays hidden).
  function showsError(feed, text) {
    var wanted = normal(text);
    if (!wanted) return false;
    return Array.prototype.some.call(feed.querySelectorAll(".ev-error-text[data-error]"), function (node) {
      return sameError(node.dataset.error, wanted);
    });
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
    render: render, place: place, showsError: showsError, money: money, types: Object.keys(RENDERERS).concat(LIVE_TYPES),
    typing: function (feed) { return new Typing(feed); },
  };
})();
