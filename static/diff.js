/* The diff viewer: a file list with counts, then one collapsible section per file, lines coloured.
 *
 * The patch is the agent's work and so untrusted: every line goes into the page as a text node.
 * Big files start folded and are drawn the first time they are opened, so a large diff opens fast.
 */
(function () {
  "use strict";

  var OPEN_LIMIT = 400; // files with more lines than this start folded
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

  function drawLines(body, file) {
    var table = el("div", "diff-lines");
    file.lines.forEach(function (line) {
      var row = el("div", "dl dl-" + line.kind);
      if (line.kind === "hunk" || line.kind === "note") {
        row.appendChild(el("span", "dl-text", line.text));
      } else {
        row.appendChild(el("span", "ln", line.oldNo === undefined ? "" : String(line.oldNo)));
        row.appendChild(el("span", "ln", line.newNo === undefined ? "" : String(line.newNo)));
        row.appendChild(el("span", "dl-sign", line.kind === "add" ? "+" : line.kind === "del" ? "-" : " "));
        row.appendChild(el("span", "dl-text", line.text));
      }
      table.appendChild(row);
    });
    if (!file.lines.length) {
      var binary = file.meta.some(function (m) { return m.indexOf("Binary files") === 0; });
      table.appendChild(el("div", "dl dl-note", binary ? "Binary file" : "No content changes"));
    }
    body.appendChild(table);
  }

  function fileSection(file, info, index) {
    var details = el("details", "diff-file");
    details.id = "diff-file-" + index;
    details.dataset.path = file.path;
    var summary = el("summary");
    summary.appendChild(el("span", "file-status file-status-" + (info ? info.status : "modified"),
      STATUS_LETTER[info && info.status] || "M"));
    summary.appendChild(el("span", "file-path mono", file.path));
    if (info) {
      summary.appendChild(el("span", "count-add mono", "+" + info.additions));
      summary.appendChild(el("span", "count-del mono", "\u2212" + info.deletions));
    }
    details.appendChild(summary);
    var body = el("div", "diff-body");
    details.appendChild(body);
    var drawn = false;
    var draw = function () {
      if (!drawn && details.open) {
        drawn = true;
        drawLines(body, file);
      }
    };
    details.addEventListener("toggle", draw);
    details.open = file.lines.length <= OPEN_LIMIT;
    draw();
    return details;
  }

  function fileList(files, sections) {
    var list = el("ul", "file-list");
    files.forEach(function (info) {
      var item = el("li");
      var index = sections.findIndex(function (f) { return f.path === info.path; });
      var link = el("a", "mono", info.path);
      link.href = "#diff-file-" + index;
      link.addEventListener("click", function () {
        var target = document.getElementById("diff-file-" + index);
        if (target) target.open = true;
      });
      item.appendChild(el("span", "file-status file-status-" + info.status, STATUS_LETTER[info.status] || "M"));
      item.appendChild(link);
      item.appendChild(el("span", "count-add mono", "+" + info.additions));
      item.appendChild(el("span", "count-del mono", "\u2212" + info.deletions));
      list.appendChild(item);
    });
    return list;
  }

  // Draws `files` (from /files) and `patch` (from /diff) into `root`, replacing what was there.
  function render(root, files, patch) {
    root.textContent = "";
    if (!files.length) {
      root.appendChild(el("p", "empty", "No changes."));
      return;
    }
    var sections = parse(patch);
    root.appendChild(fileList(files, sections));
    var byPath = {};
    files.forEach(function (info) { byPath[info.path] = info; });
    sections.forEach(function (file, index) {
      root.appendChild(fileSection(file, byPath[file.path], index));
    });
  }

  window.aicodeDiff = { render: render, parse: parse };
})();
