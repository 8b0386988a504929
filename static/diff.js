/* The diff viewer: a folder tree of the changed files, then one collapsible section per file, drawn
 * unified or side by side, with syntax highlighting (static/highlight.js).
 *
 * The patch is the agent's work and so untrusted: every line goes into the page as text nodes and
 * spans, never as markup. Big files (and every file once the page holds enough lines) start folded
 * and are drawn the first time they are opened, so a large diff opens fast.
 *
 * Each commentable line (a row in the unified view, a half row side by side) carries data-side ("old"
 * or "new", as review comments say it) and data-line; static/review.js puts comments under them.
 */
(function () {
  "use strict";

  var OPEN_LIMIT = 400; // files with more lines than this start folded
  var OPEN_BUDGET = 3000; // lines drawn at once on opening the page; later files start folded
  var STATUS_LETTER = { added: "A", modified: "M", deleted: "D", renamed: "R", copied: "C", typechange: "T" };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Splits a unified patch into files: {path, lines: [{kind, text, oldNo, newNo}]}.
  function parse(patch) {
    var files = [];
    var current = null;
    var oldNo = 0;
    var newNo = 0;
    String(patch).split("\n").forEach(function (line) {
      if (line.indexOf("diff --git ") === 0) {
        var paths = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
        current = { path: paths ? paths[2] : line.slice(11), lines: [], inHunk: false, meta: [] };
        files.push(current);
        return;
      }
      if (!current) return;
      var hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (hunk) {
        current.inHunk = true;
        oldNo = parseInt(hunk[1], 10);
        newNo = parseInt(hunk[2], 10);
        current.lines.push({ kind: "hunk", text: line });
      } else if (!current.inHunk) {
        current.meta.push(line); // index, ---/+++, mode and rename lines: before the first hunk only
      } else if (line[0] === "+") {
        current.lines.push({ kind: "add", text: line.slice(1), newNo: newNo++ });
      } else if (line[0] === "-") {
        current.lines.push({ kind: "del", text: line.slice(1), oldNo: oldNo++ });
      } else if (line[0] === " ") {
        current.lines.push({ kind: "ctx", text: line.slice(1), oldNo: oldNo++, newNo: newNo++ });
      } else if (line[0] === "\\") {
        current.lines.push({ kind: "note", text: line });
      }
    });
    return files;
  }

  var SIGN = { add: "+", del: "-", ctx: " " };

  // Highlights one side's lines in order: a comment or string left open carries to the next line.
  function Painter(path) {
    this.lang = window.aicodeHighlight.language(path);
    this.state = { old: null, "new": null };
  }
  Painter.prototype.reset = function () { this.state = { old: null, "new": null }; };
  Painter.prototype.text = function (line, side) {
    var node = el("span", "dl-text");
    this.state[side] = window.aicodeHighlight.highlight(node, line.text, this.lang, this.state[side]);
    return node;
  };

  function fullRow(line) {
    var row = el("div", "dl dl-" + line.kind);
    row.appendChild(el("span", "dl-text", line.text));
    return row;
  }

  function unifiedRow(line, painter) {
    var side = line.kind === "del" ? "old" : "new";
    var row = el("div", "dl dl-" + line.kind);
    row.dataset.side = side;
    row.dataset.line = String(side === "old" ? line.oldNo : line.newNo);
    if (line.oldNo !== undefined) row.dataset.old = String(line.oldNo);
    if (line.newNo !== undefined) row.dataset["new"] = String(line.newNo);
    row.appendChild(el("span", "ln", line.oldNo === undefined ? "" : String(line.oldNo)));
    row.appendChild(el("span", "ln", line.newNo === undefined ? "" : String(line.newNo)));
    row.appendChild(el("span", "dl-sign", SIGN[line.kind]));
    var text = painter.text(line, side);
    // A context line reads the same on both sides: its state goes on in both.
    if (line.kind === "ctx") painter.state.old = painter.state["new"];
    row.appendChild(text);
    return row;
  }

  function unified(file, painter) {
    var table = el("div", "diff-lines diff-unified");
    file.lines.forEach(function (line) {
      if (line.kind === "hunk") painter.reset();
      table.appendChild(line.kind === "hunk" || line.kind === "note" ? fullRow(line) : unifiedRow(line, painter));
    });
    return table;
  }

  // One half of a side-by-side row: `line` on `side`, or an empty filler.
  function half(line, side, painter) {
    if (!line) return el("div", "sbs sbs-" + side + " sbs-empty");
    var cell = el("div", "sbs sbs-" + side + " dl-" + line.kind);
    var number = side === "old" ? line.oldNo : line.newNo;
    cell.dataset.side = side;
    cell.dataset.line = String(number);
    cell.appendChild(el("span", "ln", String(number)));
    cell.appendChild(el("span", "dl-sign", SIGN[line.kind]));
    cell.appendChild(painter.text(line, side));
    return cell;
  }

  function pairRow(left, right, painter) {
    var row = el("div", "dl dl-split");
    row.appendChild(half(left, "old", painter));
    row.appendChild(half(right, "new", painter));
    return row;
  }

  // Side by side: removed lines pair up with the added lines that follow them.
  function split(file, painter) {
    var table = el("div", "diff-lines diff-split");
    var dels = [];
    var adds = [];
    var flush = function () {
      for (var i = 0; i < Math.max(dels.length, adds.length); i++) {
        table.appendChild(pairRow(dels[i], adds[i], painter));
      }
      dels = [];
      adds = [];
    };
    file.lines.forEach(function (line) {
      if (line.kind === "del") {
        if (adds.length) flush();
        dels.push(line);
      } else if (line.kind === "add") {
        adds.push(line);
      } else {
        flush();
        if (line.kind === "hunk") painter.reset();
        table.appendChild(line.kind === "ctx" ? pairRow(line, line, painter) : fullRow(line));
      }
    });
    flush();
    return table;
  }

  function drawLines(body, file, view) {
    var painter = new Painter(file.path);
    var table = view === "split" ? split(file, painter) : unified(file, painter);
    if (!file.lines.length) {
      var binary = file.meta.some(function (m) { return m.indexOf("Binary files") === 0; });
      table.appendChild(el("div", "dl dl-note", binary ? "Binary file" : "No content changes"));
    }
    body.appendChild(table);
  }

  function statusBadge(info) {
    var status = info ? info.status : "modified";
    return el("span", "file-status file-status-" + status, STATUS_LETTER[status] || "M");
  }

  function counts(parent, info) {
    parent.appendChild(el("span", "count-add mono", "+" + info.additions));
    parent.appendChild(el("span", "count-del mono", "\u2212" + info.deletions));
  }

  function fileSection(file, info, index, options, open) {
    var details = el("details", "diff-file");
    details.id = "diff-file-" + index;
    details.dataset.path = file.path;
    var summary = el("summary");
    summary.appendChild(statusBadge(info));
    summary.appendChild(el("span", "file-path mono", file.path));
    if (info) counts(summary, info);
    details.appendChild(summary);
    var body = el("div", "diff-body");
    details.appendChild(body);
    var draw = function () {
      if (details.dataset.drawn || !details.open) return;
      details.dataset.drawn = "1";
      drawLines(body, file, options.view);
      if (options.onDrawn) options.onDrawn(details, file);
    };
    details.addEventListener("toggle", draw);
    details.open = open;
    draw();
    return details;
  }

  // -- the folder tree -------------------------------------------------------------------------

  function buildTree(files) {
    var top = { name: "", dirs: {}, files: [] };
    files.forEach(function (info) {
      var parts = info.path.split("/");
      var node = top;
      parts.slice(0, -1).forEach(function (part) {
        node = node.dirs[part] || (node.dirs[part] = { name: part, dirs: {}, files: [] });
      });
      node.files.push({ name: parts[parts.length - 1], info: info });
    });
    return top;
  }

  // A folder holding one folder and no file shows as one row: "src/app".
  function compact(dir) {
    var names = Object.keys(dir.dirs);
    while (names.length === 1 && !dir.files.length && dir.name) {
      var only = dir.dirs[names[0]];
      dir = { name: dir.name + "/" + only.name, dirs: only.dirs, files: only.files };
      names = Object.keys(dir.dirs);
    }
    return dir;
  }

  function treeList(dir, onPick) {
    var list = el("ul");
    Object.keys(dir.dirs).sort().forEach(function (name) {
      var sub = compact(dir.dirs[name]);
      var item = el("li", "tree-dir");
      var toggle = el("button", "tree-toggle mono", sub.name + "/");
      toggle.type = "button";
      toggle.setAttribute("aria-expanded", "true");
      var children = treeList(sub, onPick);
      toggle.addEventListener("click", function () {
        var expanded = toggle.getAttribute("aria-expanded") === "true";
        toggle.setAttribute("aria-expanded", expanded ? "false" : "true");
        children.hidden = expanded;
      });
      item.appendChild(toggle);
      item.appendChild(children);
      list.appendChild(item);
    });
    dir.files.forEach(function (entry) {
      var item = el("li", "tree-file");
      item.dataset.path = entry.info.path;
      var link = el("a", "mono", entry.name);
      link.href = "#";
      link.title = entry.info.path;
      link.addEventListener("click", function (event) {
        event.preventDefault();
        onPick(entry.info.path);
      });
      item.appendChild(statusBadge(entry.info));
      item.appendChild(link);
      counts(item, entry.info);
      list.appendChild(item);
    });
    return list;
  }

  function fileTree(files, onPick) {
    var list = treeList(buildTree(files), onPick);
    list.className = "file-list file-tree";
    list.setAttribute("aria-label", "Changed files");
    return list;
  }

  // Draws `files` (from /files) and `patch` (from /diff) into `root`, replacing what was there.
  // options: view ("unified" or "split"), open (path -> bool, to keep sections as they were),
  // onDrawn(section, file) once a section's lines are drawn, onPick(section) when the tree opens one.
  // Answers the file sections, in order.
  function render(root, files, patch, options) {
    options = options || {};
    root.textContent = "";
    if (!files.length) {
      root.appendChild(el("p", "empty", "No changes."));
      return [];
    }
    var parsed = parse(patch);
    var byPath = {};
    files.forEach(function (info) { byPath[info.path] = info; });
    var sections = [];
    var budget = OPEN_BUDGET;
    var pick = function (path) {
      var section = sections.find(function (s) { return s.dataset.path === path; });
      if (!section) return;
      section.open = true;
      section.scrollIntoView({ block: "start" });
      if (options.onPick) options.onPick(section);
    };
    root.appendChild(fileTree(files, pick));
    parsed.forEach(function (file, index) {
      var known = options.open ? options.open[file.path] : undefined;
      var open = known !== undefined ? known : file.lines.length <= OPEN_LIMIT && file.lines.length <= budget;
      if (open) budget -= file.lines.length;
      var section = fileSection(file, byPath[file.path], index, options, open);
      sections.push(section);
      root.appendChild(section);
    });
    return sections;
  }

  window.aicodeDiff = { render: render, parse: parse };
})();
