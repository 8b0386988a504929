/* Reviewing a task's changes on its page: which changes (all, or one turn's), unified or side by side,
 * inline comments on lines (sent to the agent as one follow-up), and keyboard shortcuts.
 *
 * static/task.js calls aicodeReview.load() when the task's head moves; this file asks for the files, the
 * patch and the comments, and has static/diff.js draw them. Comments and the agent's code are shown as
 * text only. A comment points at a line of the whole task's diff, so comments are shown and written on
 * "All changes" only: a single turn's line numbers can differ from the task's.
 */
(function () {
  "use strict";

  var VIEW_KEY = "aicode.diffView";
  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];
  var root = document.getElementById("task");
  var changes = document.getElementById("changes");
  if (!root || !changes) return;

  var api = "/api/tasks/" + root.dataset.taskId;
  var $ = function (selector) { return changes.querySelector(selector); };
  var diffRoot = $("[data-diff-root]");
  var canComment = changes.dataset.canComment === "1";
  var state = {
    view: readView(), turn: "", files: [], patch: "", comments: [], sections: [], current: -1,
    selection: null, status: root.dataset.status, loaded: false, generation: 0,
  };

  function readView() {
    try {
      return window.localStorage.getItem(VIEW_KEY) === "split" ? "split" : "unified";
    } catch (err) {
      return "unified"; // storage disabled: the default every time
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function allChanges() { return state.turn === ""; }

  // -- loading and drawing ---------------------------------------------------------------------

  function load() {
    var generation = ++state.generation;
    var query = state.turn ? "?commit=" + encodeURIComponent(state.turn) : "";
    return Promise.all([
      window.aicode.getJSON(api + "/files" + query),
      fetch(api + "/diff" + query, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("the diff could not be loaded (" + r.status + ")");
        return r.text();
      }),
      window.aicode.getJSON(api + "/comments").catch(function () { return []; }),
    ]).then(function (parts) {
      if (generation !== state.generation) return; // a later load (another turn picked) wins
      state.files = parts[0];
      state.patch = parts[1];
      state.comments = parts[2];
      state.loaded = true;
      draw(false);
    }).catch(function (err) {
      if (generation !== state.generation) return;
      diffRoot.textContent = "";
      diffRoot.appendChild(el("p", "alert alert-error", err.message));
    });
  }

  function summary() {
    var add = 0;
    var del = 0;
    state.files.forEach(function (f) { add += f.additions; del += f.deletions; });
    var n = state.files.length;
    $("[data-diff-summary]").textContent = n ? n + (n === 1 ? " file" : " files") + " \u00b7 +" + add + " \u2212" + del : "";
  }

  // `keep`: the sections stay open or folded as they are (a view switch), else as diff.js decides.
  function draw(keep) {
    var open = null;
    if (keep) {
      open = {};
      state.sections.forEach(function (s) { open[s.dataset.path] = s.open; });
    }
    var currentPath = state.current >= 0 && state.sections[state.current] ? state.sections[state.current].dataset.path : null;
    state.selection = null;
    state.sections = window.aicodeDiff.render(diffRoot, state.files, state.patch, {
      view: state.view, open: open, onDrawn: placeComments, onPick: setCurrent,
    });
    state.current = state.sections.findIndex(function (s) { return s.dataset.path === currentPath; });
    if (allChanges()) strayComments();
    summary();
    showBar();
  }

  // -- choosing what to see --------------------------------------------------------------------

  function setView(view) {
    state.view = view;
    try { window.localStorage.setItem(VIEW_KEY, view); } catch (err) { /* storage disabled */ }
    changes.querySelectorAll("[data-diff-view]").forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.diffView === view ? "true" : "false");
    });
    if (state.loaded) draw(true);
  }

  function turnSelect() { return $("[data-diff-turn]"); }

  // A turn that committed while the page is open joins the list (a rebase rewrote them all: gone).
  function followTurns(event) {
    var ev = event.detail;
    var select = turnSelect();
    if (!ev || !select) return;
    if (ev.type === "git.commit" && ev.data && ev.data.commit) {
      if (select.querySelector('option[value="' + ev.data.commit + '"]')) return;
      var option = el("option", "", "Turn " + select.options.length + (ev.data.partial ? " (partial)" : ""));
      option.value = ev.data.commit;
      select.appendChild(option);
    } else if (ev.type === "git.rebase") {
      while (select.options.length > 1) select.remove(1);
      if (state.turn) pickTurn("");
    }
    select.closest("[data-diff-turns]").hidden = select.options.length < 2;
  }

  function pickTurn(commit) {
    state.turn = commit;
    turnSelect().value = commit;
    diffRoot.textContent = "";
    diffRoot.appendChild(el("p", "muted small", "Loading changes\u2026"));
    return load();
  }

  // -- comments ------------------------------------------------------------------------------

  function fileComments(path) {
    return state.comments.filter(function (c) { return c.path === path; });
  }

  function openComments() {
    return state.comments.filter(function (c) { return !c.sent_at; });
  }

  function ago(iso) {
    var s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(iso).toLocaleDateString();
  }

  function commentNode(comment, where) {
    var node = el("div", "comment" + (comment.sent_at ? " comment-sent" : ""));
    node.dataset.commentId = String(comment.id);
    var head = el("div", "comment-head small");
    head.appendChild(el("strong", "", comment.author));
    var time = el("time", "muted", ago(comment.created_at));
    time.dateTime = comment.created_at;
    time.title = new Date(comment.created_at).toLocaleString();
    head.appendChild(time);
    if (where) head.appendChild(el("span", "muted mono", where));
    if (comment.sent_at) head.appendChild(el("span", "badge badge-neutral", "sent"));
    if (canComment && comment.author === changes.dataset.username) {
      var remove = el("button", "btn btn-ghost btn-small comment-delete", "Delete");
      remove.type = "button";
      remove.setAttribute("aria-label", "Delete comment");
      remove.addEventListener("click", function () { deleteComment(comment, remove); });
      head.appendChild(remove);
    }
    node.appendChild(head);
    node.appendChild(el("div", "comment-body", comment.body));
    return node;
  }

  function lineRow(section, side, line) {
    var attr = side === "old" ? "data-old" : "data-new";
    var anchor = section.querySelector('[data-side="' + side + '"][data-line="' + line + '"]') ||
      section.querySelector(".diff-unified [" + attr + '="' + line + '"]');
    return anchor ? anchor.closest(".dl") : null;
  }

  // Puts a drawn section's comments under their lines; those on lines this diff does not show on top.
  function placeComments(section) {
    section.querySelectorAll(".comment-thread, .comment-elsewhere").forEach(function (n) { n.remove(); });
    var comments = allChanges() ? fileComments(section.dataset.path) : [];
    var elsewhere = [];
    comments.forEach(function (comment) {
      var row = lineRow(section, comment.side, comment.line);
      if (!row) {
        elsewhere.push(comment);
        return;
      }
      var thread = row.nextElementSibling;
      if (!thread || !thread.classList.contains("comment-thread")) {
        thread = el("div", "comment-thread");
        row.after(thread);
      }
      thread.appendChild(commentNode(comment));
    });
    if (elsewhere.length) {
      var box = el("div", "comment-elsewhere");
      box.appendChild(el("p", "muted small", "On lines this diff does not show:"));
      elsewhere.forEach(function (c) { box.appendChild(commentNode(c, "line " + c.line + " (" + c.side + ")")); });
      section.querySelector(".diff-body").prepend(box);
    }
    var count = section.querySelector(".comment-count");
    if (count) count.remove();
    if (comments.length) {
      var badge = el("span", "comment-count small", comments.length + (comments.length === 1 ? " comment" : " comments"));
      section.querySelector("summary .file-path").after(badge);
    }
  }

  // Comments on files this diff does not show at all, listed above the tree.
  function strayComments() {
    var shown = {};
    state.sections.forEach(function (s) { shown[s.dataset.path] = true; });
    var stray = state.comments.filter(function (c) { return !shown[c.path]; });
    if (!stray.length) return;
    var box = el("div", "comment-elsewhere");
    box.appendChild(el("p", "muted small", "On files this diff does not show:"));
    stray.forEach(function (c) { box.appendChild(commentNode(c, c.path + ":" + c.line)); });
    diffRoot.prepend(box);
  }

  function refreshComments() {
    state.sections.forEach(function (s) {
      if (s.dataset.drawn) placeComments(s);
    });
    showBar();
  }

  function deleteComment(comment, button) {
    button.disabled = true;
    window.aicode.send("DELETE", api + "/comments/" + comment.id).then(function () {
      state.comments = state.comments.filter(function (c) { return c.id !== comment.id; });
      refreshComments();
    }).catch(function (err) {
      button.disabled = false;
      window.alert("Could not delete the comment: " + err.message);
    });
  }

  // -- choosing lines and writing a comment ----------------------------------------------------

  function anchorsOf(section, side) {
    return Array.prototype.filter.call(section.querySelectorAll("[data-line]"), function (a) {
      return a.dataset.side === side;
    });
  }

  function clearSelection() {
    diffRoot.querySelectorAll(".dl-selected").forEach(function (n) { n.classList.remove("dl-selected"); });
  }

  // Selects from the selection's first line to `anchor` (shift), or just `anchor`.
  function select(anchor, extend) {
    var section = anchor.closest(".diff-file");
    var side = anchor.dataset.side;
    var line = Number(anchor.dataset.line);
    var sel = state.selection;
    var from = extend && sel && sel.section === section && sel.side === side ? sel.from : line;
    state.selection = { section: section, side: side, from: from, to: line };
    clearSelection();
    var low = Math.min(from, line);
    var high = Math.max(from, line);
    anchorsOf(section, side).forEach(function (a) {
      var n = Number(a.dataset.line);
      if (n >= low && n <= high) a.classList.add("dl-selected");
    });
    setCurrent(section);
  }

  function closeForm() {
    diffRoot.querySelectorAll(".comment-form").forEach(function (n) { n.remove(); });
  }

  function openForm() {
    var sel = state.selection;
    if (!sel || !canComment || !allChanges()) return;
    closeForm();
    var low = Math.min(sel.from, sel.to);
    var last = Math.max(sel.from, sel.to);
    var row = lineRow(sel.section, sel.side, last);
    if (!row) return;
    var form = el("form", "comment-form");
    var label = low === last ? "line " + last : "lines " + low + "\u2013" + last;
    var area = el("textarea");
    area.name = "body";
    area.rows = 3;
    area.required = true;
    area.maxLength = 10000;
    area.setAttribute("aria-label", "Comment on " + label);
    area.placeholder = "Comment on " + label + (sel.side === "old" ? " (before the changes)" : "");
    var actions = el("div", "form-actions");
    var submit = el("button", "btn btn-primary btn-small", "Comment");
    submit.type = "submit";
    var cancel = el("button", "btn btn-small", "Cancel");
    cancel.type = "button";
    var error = el("p", "alert alert-error small");
    error.hidden = true;
    actions.appendChild(submit);
    actions.appendChild(cancel);
    form.appendChild(area);
    form.appendChild(actions);
    form.appendChild(error);
    cancel.addEventListener("click", function () { closeForm(); clearSelection(); });
    area.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
      if (event.key === "Escape") cancel.click();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = area.value.trim();
      if (!body) return;
      // The API keeps one line (the range's last, whose code it quotes): the range goes in the text.
      if (low !== last) body = "Lines " + low + "\u2013" + last + ": " + body;
      submit.disabled = true;
      window.aicode.send("POST", api + "/comments", {
        path: sel.section.dataset.path, line: last, side: sel.side, body: body,
      }).then(function (comment) {
        state.comments.push(comment);
        closeForm();
        clearSelection();
        placeComments(sel.section);
        showBar();
      }).catch(function (err) {
        submit.disabled = false;
        error.textContent = err.message;
        error.hidden = false;
      });
    });
    var thread = row.nextElementSibling;
    (thread && thread.classList.contains("comment-thread") ? thread : row).after(form);
    area.focus();
  }

  function lineClicked(event) {
    var number = event.target.closest(".ln");
    var anchor = number && number.closest("[data-line]");
    if (!anchor || !canComment || !allChanges()) return;
    event.preventDefault();
    select(anchor, event.shiftKey);
    openForm();
  }

  // -- sending ---------------------------------------------------------------------------------

  function showBar() {
    var bar = $("[data-review-bar]");
    if (!bar) return;
    var open = openComments().length;
    bar.hidden = !canComment || open === 0;
    $("[data-review-count]").textContent = open + (open === 1 ? " open comment" : " open comments");
    var running = TERMINAL.indexOf(state.status) < 0;
    $("[data-review-send]").disabled = running;
    $("[data-review-hint]").textContent = running ? "Available once this turn ends." : "";
  }

  function sendComments() {
    var button = $("[data-review-send]");
    var error = $("[data-review-error]");
    button.disabled = true;
    error.hidden = true;
    window.aicode.send("POST", api + "/comments/send").then(function (task) {
      // task.js takes the queued turn from here: status, and the live feed opened again.
      root.dispatchEvent(new CustomEvent("aicode:queued", { detail: task }));
      return window.aicode.getJSON(api + "/comments").then(function (comments) {
        state.comments = comments;
        refreshComments();
      });
    }).catch(function (err) {
      error.textContent = err.message;
      error.hidden = false;
      showBar();
    });
  }

  // -- keyboard --------------------------------------------------------------------------------

  function setCurrent(section) {
    state.sections.forEach(function (s) { s.classList.remove("diff-current"); });
    section.classList.add("diff-current");
    state.current = state.sections.indexOf(section);
  }

  function moveFile(step) {
    if (!state.sections.length) return;
    var next = Math.min(state.sections.length - 1, Math.max(0, state.current + step));
    if (state.current < 0) next = step > 0 ? 0 : state.sections.length - 1;
    var section = state.sections[next];
    setCurrent(section);
    var head = section.querySelector("summary");
    head.focus({ preventScroll: true });
    section.scrollIntoView({ block: "start" });
  }

  // Comment on the selected line, or else on the first line of the current file.
  function commentKey() {
    if (!canComment || !allChanges()) return;
    if (!state.selection) {
      var section = state.sections[Math.max(0, state.current)];
      if (!section) return;
      section.open = true; // drawn now, by its toggle listener
      if (!section.dataset.drawn) section.dispatchEvent(new Event("toggle"));
      var first = section.querySelector("[data-line]");
      if (!first) return;
      select(first, false);
    }
    openForm();
  }

  function typing(target) {
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]");
  }

  function keyPressed(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector("dialog[open]") && event.key !== "?") return;
    var actions = {
      j: function () { moveFile(1); },
      k: function () { moveFile(-1); },
      c: commentKey,
      "?": function () { document.getElementById("shortcuts-dialog").showModal(); },
    };
    var action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  // -- start -----------------------------------------------------------------------------------

  changes.querySelectorAll("[data-diff-view]").forEach(function (button) {
    button.addEventListener("click", function () { setView(button.dataset.diffView); });
  });
  setView(state.view);
  var turns = turnSelect();
  if (turns) turns.addEventListener("change", function () { pickTurn(turns.value); });
  diffRoot.addEventListener("click", lineClicked);
  var send = $("[data-review-send]");
  if (send) send.addEventListener("click", sendComments);
  root.addEventListener("aicode:event", followTurns);
  root.addEventListener("aicode:status", function (event) {
    state.status = event.detail;
    showBar();
  });
  document.addEventListener("keydown", keyPressed);
  var help = $("[data-shortcuts]");
  if (help) help.addEventListener("click", function () { document.getElementById("shortcuts-dialog").showModal(); });

  window.aicodeReview = { load: load };
})();
