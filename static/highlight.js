/* A small syntax highlighter for the diff: keywords, strings, comments and numbers, by file extension.
 *
 * The code is the agent's output and so untrusted: tokens become text nodes and <span>s made with
 * createElement/textContent, never markup. One pass over each line, char by char, with only simple
 * sticky regexes (no nested quantifiers), so the time is linear in the line's length; past
 * MAX_LINE characters a line is plain text. A block comment or multi-line string carries over to the
 * next line through the `state` each call returns (the diff keeps one per side, old and new).
 */
(function () {
  "use strict";

  var MAX_LINE = 2000;
  var WORD = /[A-Za-z_$][\w$]*/y;
  var AT_NAME = /[\w-]*/y;
  var NUMBER = /0[xXbBoO][0-9a-fA-F_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?[A-Za-z%]*/y;

  function words(list) {
    var set = Object.create(null);
    list.split(" ").forEach(function (w) { if (w) set[w] = true; });
    return set;
  }

  var C_LIKE = "if else for while do switch case default break continue return goto struct union enum typedef " +
    "const static extern void int char long short float double unsigned signed sizeof volatile inline auto " +
    "register bool true false NULL nullptr class public private protected virtual template typename namespace " +
    "using new delete this throw try catch operator friend override final constexpr noexcept include define " +
    "ifdef ifndef endif pragma";
  var LANGUAGES = {
    py: { kw: "False None True and as assert async await break class continue def del elif else except finally " +
      "for from global if import in is lambda nonlocal not or pass raise return try while with yield match case self",
      line: ["#"], quotes: "\"'", triple: true },
    js: { kw: "break case catch class const continue debugger default delete do else export extends finally for " +
      "function if import in instanceof let new return super switch this throw try typeof var void while with " +
      "yield async await of static get set true false null undefined interface type enum implements private " +
      "public protected readonly as from declare namespace abstract keyof any never unknown string number boolean",
      line: ["//"], block: ["/*", "*/"], quotes: "\"'`", multiline: "`" },
    go: { kw: "break case chan const continue default defer else fallthrough for func go goto if import interface " +
      "map package range return select struct switch type var true false nil iota string int int64 error bool byte",
      line: ["//"], block: ["/*", "*/"], quotes: "\"'`", multiline: "`" },
    rs: { kw: "as async await break const continue crate dyn else enum extern false fn for if impl in let loop match " +
      "mod move mut pub ref return self Self static struct super trait true type unsafe use where while Some None " +
      "Ok Err String Vec Option Result Box",
      line: ["//"], block: ["/*", "*/"], quotes: "\"'", charQuote: "'" },
    java: { kw: "abstract assert boolean break byte case catch char class const continue default do double else " +
      "enum extends final finally float for goto if implements import instanceof int interface long native new " +
      "package private protected public return short static strictfp super switch synchronized this throw throws " +
      "transient try void volatile while var record true false null",
      line: ["//"], block: ["/*", "*/"], quotes: "\"'" },
    c: { kw: C_LIKE, line: ["//"], block: ["/*", "*/"], quotes: "\"'" },
    sh: { kw: "if then else elif fi for while until do done case esac in function return local export readonly " +
      "declare set unset shift exit break continue source echo true false",
      line: ["#"], wordStartComment: true, quotes: "\"'" },
    json: { kw: "true false null", quotes: "\"" },
    yaml: { kw: "true false null yes no on off", line: ["#"], wordStartComment: true, quotes: "\"'", keys: ":" },
    toml: { kw: "true false", line: ["#"], quotes: "\"'", triple: true, keys: "=" },
    // At-rules and !important: the words after their "@" or "!".
    css: { at: "media import font-face keyframes supports layer charset page namespace container important",
      block: ["/*", "*/"], quotes: "\"'" },
    html: { markup: true },
    md: { markdown: true },
    sql: { kw: "select from where and or not insert into values update set delete create table index view drop " +
      "alter add column primary key foreign references join left right inner outer full on as group by order " +
      "having limit offset union all distinct case when then else end null is in exists like between returning " +
      "with begin commit rollback default unique check constraint cascade if true false",
      line: ["--"], block: ["/*", "*/"], quotes: "'\"", caseless: true },
    rb: { kw: "alias and begin break case class def defined? do else elsif end ensure false for if in module next " +
      "nil not or redo rescue retry return self super then true undef unless until when while yield require " +
      "attr_reader attr_accessor puts", line: ["#"], quotes: "\"'" },
  };
  Object.keys(LANGUAGES).forEach(function (name) {
    var lang = LANGUAGES[name];
    lang.name = name;
    lang.kw = words(lang.kw || "");
    lang.at = lang.at ? words(lang.at) : null;
  });

  var EXTENSIONS = {
    py: "py", pyi: "py", js: "js", mjs: "js", cjs: "js", jsx: "js", ts: "js", tsx: "js", mts: "js", go: "go",
    rs: "rs", java: "java", kt: "java", c: "c", h: "c", cc: "c", cpp: "c", cxx: "c", hpp: "c", hh: "c",
    sh: "sh", bash: "sh", zsh: "sh", json: "json", yaml: "yaml", yml: "yaml", toml: "toml", css: "css",
    scss: "css", html: "html", htm: "html", xml: "html", svg: "html", md: "md", markdown: "md", sql: "sql",
    rb: "rb",
  };

  // The language of `path` by its extension (or a few well-known names), or null: plain text.
  function language(path) {
    var name = String(path).split("/").pop();
    if (name === "Dockerfile" || name === "Makefile") return LANGUAGES.sh;
    var dot = name.lastIndexOf(".");
    var ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
    return LANGUAGES[EXTENSIONS[ext]] || null;
  }

  function isWordChar(ch) {
    return !!ch && /[\w$]/.test(ch);
  }

  // Collects a line's tokens as [className or "", text] pairs, merging runs of plain text.
  function Tokens() {
    this.list = [];
  }
  Tokens.prototype.push = function (kind, text) {
    if (!text) return;
    var last = this.list[this.list.length - 1];
    if (last && last[0] === kind && !kind) last[1] += text;
    else this.list.push([kind, text]);
  };

  // The end of a quoted string starting at `start` (the index after its closing quote), or -1 when
  // the line ends first. Backslash escapes skip the next character.
  function stringEnd(text, start, quote) {
    for (var i = start + quote.length; i < text.length; i++) {
      if (text[i] === "\\" && quote.length === 1) i++;
      else if (text.startsWith(quote, i)) return i + quote.length;
    }
    return -1;
  }

  function openString(lang, text, i) {
    var ch = text[i];
    if (!lang.quotes || lang.quotes.indexOf(ch) < 0) return null;
    if (lang.triple && text.startsWith(ch + ch + ch, i)) return ch + ch + ch;
    // A Rust lifetime ('a) is no string: only 'x' or '\n' are.
    if (lang.charQuote === ch && text[i + 1] !== "\\" && text[i + 2] !== ch) return null;
    return ch;
  }

  function scan(text, lang, state, out) {
    var i = 0;
    var n = text.length;
    if (state && state.close) {
      var end = text.indexOf(state.close, 0);
      if (end < 0) {
        out.push(state.kind, text);
        return state;
      }
      out.push(state.kind, text.slice(0, end + state.close.length));
      i = end + state.close.length;
    }
    var keyDone = !lang.keys;
    while (i < n) {
      var ch = text[i];
      if (!keyDone && ch !== " " && ch !== "\t") {
        keyDone = true;
        var sep = text.indexOf(lang.keys, i);
        var key = sep > i ? text.slice(i, sep) : "";
        if (key && /^[\w.\-"' ]+$/.test(key)) {
          out.push("tok-kw", key);
          i = sep;
          continue;
        }
      }
      if (lang.line && lang.line.some(function (p) { return text.startsWith(p, i); }) &&
          (!lang.wordStartComment || i === 0 || /\s/.test(text[i - 1]))) {
        out.push("tok-com", text.slice(i));
        return null;
      }
      if (lang.block && text.startsWith(lang.block[0], i)) {
        var close = text.indexOf(lang.block[1], i + lang.block[0].length);
        if (close < 0) {
          out.push("tok-com", text.slice(i));
          return { kind: "tok-com", close: lang.block[1] };
        }
        out.push("tok-com", text.slice(i, close + lang.block[1].length));
        i = close + lang.block[1].length;
        continue;
      }
      var quote = openString(lang, text, i);
      if (quote) {
        var stop = stringEnd(text, i, quote);
        if (stop < 0) {
          out.push("tok-str", text.slice(i));
          return quote.length === 3 || quote === lang.multiline ? { kind: "tok-str", close: quote } : null;
        }
        out.push("tok-str", text.slice(i, stop));
        i = stop;
        continue;
      }
      if (/[0-9]/.test(ch) && !isWordChar(text[i - 1])) {
        NUMBER.lastIndex = i;
        var num = NUMBER.exec(text);
        out.push("tok-num", num[0]);
        i += num[0].length;
        continue;
      }
      if (lang.at && ch === "#" && /[0-9a-fA-F]/.test(text[i + 1] || "")) {
        WORD.lastIndex = i + 1;
        var hex = WORD.exec(text) || [""];
        out.push("tok-num", "#" + hex[0]);
        i += 1 + hex[0].length;
        continue;
      }
      if ((ch === "@" || ch === "!") && lang.at) {
        AT_NAME.lastIndex = i + 1;
        var name = AT_NAME.exec(text)[0];
        var rule = ch + name;
        out.push(lang.at[name] ? "tok-kw" : "", rule);
        i += rule.length;
        continue;
      }
      WORD.lastIndex = i;
      var word = /[A-Za-z_$]/.test(ch) ? WORD.exec(text) : null;
      if (word) {
        var w = word[0];
        if (lang.name === "rb" && text[i + w.length] === "?") w += "?";
        out.push(lang.kw[lang.caseless ? w.toLowerCase() : w] ? "tok-kw" : "", w);
        i += w.length;
        continue;
      }
      out.push("", ch);
      i++;
    }
    return null;
  }

  // Tags and their attribute strings, comments; text between tags stays plain.
  function scanMarkup(text, state, out) {
    var i = 0;
    var inTag = !!(state && state.tag);
    if (state && state.close) {
      var end = text.indexOf(state.close);
      if (end < 0) {
        out.push("tok-com", text);
        return state;
      }
      out.push("tok-com", text.slice(0, end + 3));
      i = end + 3;
    }
    while (i < text.length) {
      var ch = text[i];
      if (!inTag && text.startsWith("<!--", i)) {
        var close = text.indexOf("-->", i + 4);
        if (close < 0) {
          out.push("tok-com", text.slice(i));
          return { close: "-->" };
        }
        out.push("tok-com", text.slice(i, close + 3));
        i = close + 3;
      } else if (!inTag && ch === "<" && /[A-Za-z\/!?]/.test(text[i + 1] || "")) {
        WORD.lastIndex = i + (text[i + 1] === "/" || text[i + 1] === "!" || text[i + 1] === "?" ? 2 : 1);
        var name = WORD.exec(text);
        var len = WORD.lastIndex - i;
        if (!name) len = 2;
        out.push("tok-kw", text.slice(i, i + len));
        i += len;
        inTag = true;
      } else if (inTag && (ch === "\"" || ch === "'")) {
        var stop = stringEnd(text, i, ch);
        out.push("tok-str", text.slice(i, stop < 0 ? text.length : stop));
        i = stop < 0 ? text.length : stop;
      } else if (inTag && (ch === ">" || text.startsWith("/>", i))) {
        var tail = ch === ">" ? 1 : 2;
        out.push("tok-kw", text.slice(i, i + tail));
        i += tail;
        inTag = false;
      } else {
        out.push("", ch);
        i++;
      }
    }
    return inTag ? { tag: true } : null;
  }

  // Headings and quotes as whole lines, `inline code` as strings.
  function scanMarkdown(text, out) {
    if (/^\s{0,3}#/.test(text)) {
      out.push("tok-kw", text);
      return;
    }
    if (/^\s{0,3}>/.test(text)) {
      out.push("tok-com", text);
      return;
    }
    var i = 0;
    while (i < text.length) {
      var open = text.indexOf("`", i);
      var close = open < 0 ? -1 : text.indexOf("`", open + 1);
      if (close < 0) break;
      out.push("", text.slice(i, open));
      out.push("tok-str", text.slice(open, close + 1));
      i = close + 1;
    }
    out.push("", text.slice(i));
  }

  // Appends `text` to `parent` as text nodes and token <span>s; answers the state for the next line.
  function highlight(parent, text, lang, state) {
    text = String(text);
    if (!lang || text.length > MAX_LINE) {
      parent.appendChild(document.createTextNode(text));
      return state || null;
    }
    var out = new Tokens();
    var next = null;
    if (lang.markup) next = scanMarkup(text, state, out);
    else if (lang.markdown) scanMarkdown(text, out);
    else next = scan(text, lang, state, out);
    out.list.forEach(function (token) {
      if (!token[0]) {
        parent.appendChild(document.createTextNode(token[1]));
        return;
      }
      var span = document.createElement("span");
      span.className = token[0];
      span.textContent = token[1];
      parent.appendChild(span);
    });
    return next;
  }

  window.aicodeHighlight = { language: language, highlight: highlight, MAX_LINE: MAX_LINE };
})();
