/* A small, safe markdown renderer for agent text.
 *
 * Agent output is untrusted, so this never produces HTML strings: it builds DOM nodes and puts
 * all text in through text nodes. Only a small subset is understood (fenced code, headings, lists,
 * paragraphs, inline code, bold, italics, and links whose URL is http or https); everything else
 * shows as the literal text it is.
 */
(function () {
  "use strict";

  var INLINE = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\*([^*\s][^*\n]*)\*|(^|[^\w])_([^_\s][^_\n]*)_(?!\w)|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function safeUrl(raw) {
    try {
      var url = new URL(raw, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  // Appends `text` to `parent`, turning the inline subset into elements.
  function inline(parent, text) {
    var last = 0;
    var match;
    var pattern = new RegExp(INLINE.source, "g");
    while ((match = pattern.exec(text)) !== null) {
      var start = match.index;
      if (match[4] !== undefined) {
        start += match[4].length; // the character before "_" belongs to the text
      }
      parent.appendChild(document.createTextNode(text.slice(last, start)));
      last = pattern.lastIndex;
      if (match[1] !== undefined) {
        var code = el("code");
        code.textContent = match[1];
        parent.appendChild(code);
      } else if (match[2] !== undefined) {
        var strong = el("strong");
        inline(strong, match[2]);
        parent.appendChild(strong);
      } else if (match[3] !== undefined || match[5] !== undefined) {
        var em = el("em");
        inline(em, match[3] !== undefined ? match[3] : match[5]);
        parent.appendChild(em);
      } else {
        var href = safeUrl(match[7]);
        if (href === null) {
          parent.appendChild(document.createTextNode(match[0]));
        } else {
          var link = el("a");
          link.href = href;
          link.rel = "noopener noreferrer nofollow";
          link.target = "_blank";
          link.textContent = match[6];
          parent.appendChild(link);
        }
      }
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function paragraph(lines) {
    var p = el("p");
    lines.forEach(function (line, index) {
      if (index > 0) p.appendChild(el("br"));
      inline(p, line);
    });
    return p;
  }

  function list(lines, ordered) {
    var node = el(ordered ? "ol" : "ul");
    lines.forEach(function (line) {
      var item = el("li");
      inline(item, line.replace(ordered ? /^\s*\d+[.)]\s+/ : /^\s*[-*+]\s+/, ""));
      node.appendChild(item);
    });
    return node;
  }

  var BULLET = /^\s*[-*+]\s+/;
  var NUMBERED = /^\s*\d+[.)]\s+/;
  var HEADING = /^(#{1,6})\s+(.*)$/;
  var FENCE = /^\s*```\s*([\w+-]*)\s*$/;

  // Renders `source` into a DocumentFragment.
  function render(source) {
    var out = document.createDocumentFragment();
    var lines = String(source).replace(/\r\n?/g, "\n").split("\n");
    var para = [];
    var flush = function () {
      if (para.length) out.appendChild(paragraph(para));
      para = [];
    };
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      var fence = FENCE.exec(line);
      if (fence) {
        flush();
        var body = [];
        for (i += 1; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) body.push(lines[i]);
        var pre = el("pre", "code-block");
        var code = el("code");
        if (fence[1]) code.dataset.lang = fence[1];
        code.textContent = body.join("\n");
        pre.appendChild(code);
        out.appendChild(pre);
        continue;
      }
      var heading = HEADING.exec(line);
      if (heading) {
        flush();
        var h = el("h" + Math.min(6, heading[1].length + 2), "md-heading");
        inline(h, heading[2]);
        out.appendChild(h);
        continue;
      }
      if (BULLET.test(line) || NUMBERED.test(line)) {
        flush();
        var ordered = NUMBERED.test(line);
        var items = [];
        var kind = ordered ? NUMBERED : BULLET;
        for (; i < lines.length && kind.test(lines[i]); i++) items.push(lines[i]);
        i -= 1;
        out.appendChild(list(items, ordered));
        continue;
      }
      if (!line.trim()) {
        flush();
        continue;
      }
      para.push(line);
    }
    flush();
    return out;
  }

  // Replaces the text of an element with its rendering (the text itself came escaped from the server).
  function upgrade(node) {
    var text = node.textContent;
    node.textContent = "";
    node.appendChild(render(text));
  }

  window.aicodeMarkdown = { render: render, upgrade: upgrade };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-markdown]").forEach(upgrade);
  });
})();
