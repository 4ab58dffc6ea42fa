/* A small syntax highlighter: one regular expression per language, tokens wrapped in spans.
 * It is not a parser; it colours comments, strings, numbers and keywords well enough to read
 * source in a preview, and it escapes everything it emits. */
"use strict";
(function () {
  const words = (s) => "\\b(?:" + s.trim().split(/\s+/).join("|") + ")\\b";
  const NUM = "\\b(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|\\d[\\d_]*(?:\\.\\d[\\d_]*)?(?:[eE][+-]?\\d+)?)\\b";
  const DQ = '"(?:[^"\\\\\\n]|\\\\.)*"?';
  const SQ = "'(?:[^'\\\\\\n]|\\\\.)*'?";
  const BT = "`(?:[^`\\\\]|\\\\[\\s\\S])*`?";
  const BLOCK = "/\\*[\\s\\S]*?(?:\\*/|$(?![\\s\\S]))";
  const LINE = (m) => m + ".*";
  const FN = "\\b[A-Za-z_][\\w]*(?=\\s*\\()";
  const TYPE = "\\b[A-Z][A-Za-z0-9_]*[a-z][A-Za-z0-9_]*\\b";

  const C_KW = `auto break case catch char class const continue default delete do double else enum
    extern final finally float for friend goto if implements import inline int interface long namespace
    new operator override package private protected public register return short signed sizeof static
    struct super switch template this throw throws try typedef typename union unsigned using virtual
    void volatile while bool true false null nullptr NULL var val fun when is in out`;
  const JS_KW = `async await break case catch class const continue debugger default delete do else
    export extends finally for from function if import in instanceof let new of return static super
    switch this throw try typeof var void while with yield true false null undefined interface type
    enum implements readonly as`;
  const PY_KW = `and as assert async await break class continue def del elif else except finally for
    from global if import in is lambda nonlocal not or pass raise return try while with yield match
    case True False None self`;
  const GO_KW = `break case chan const continue default defer else fallthrough for func go goto if
    import interface map package range return select struct switch type var true false nil`;
  const RS_KW = `as async await break const continue crate dyn else enum extern false fn for if impl
    in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe
    use where while`;
  const SH_KW = `if then else elif fi for while until do done case esac function in return local
    export readonly declare unset shift exit break continue echo set source`;
  const SQL_KW = `select from where and or not insert into values update set delete create table
    drop alter add index view join left right inner outer on group by order having limit offset as
    distinct union all null is in like between case when then else end primary key foreign references
    default integer int text varchar boolean true false begin commit rollback`;
  const RB_KW = `alias and begin break case class def defined do else elsif end ensure false for if
    in module next nil not or redo rescue retry return self super then true undef unless until when
    while yield require`;
  const LUA_KW = `and break do else elseif end false for function goto if in local nil not or repeat
    return then true until while`;

  const R = {
    python: [
      ["str", '"""[\\s\\S]*?(?:"""|$(?![\\s\\S]))' + "|'''[\\s\\S]*?(?:'''|$(?![\\s\\S]))"],
      ["com", LINE("#")], ["str", "[rbfuRBFU]{0,2}(?:" + DQ + "|" + SQ + ")"],
      ["type", "@[\\w.]+"], ["kw", words(PY_KW)], ["num", NUM], ["fn", FN], ["type", TYPE],
    ],
    javascript: [
      ["com", BLOCK], ["com", LINE("//")], ["str", DQ + "|" + SQ + "|" + BT],
      ["kw", words(JS_KW)], ["num", NUM], ["fn", FN], ["type", TYPE],
    ],
    c: [
      ["com", BLOCK], ["com", LINE("//")], ["kw", "^\\s*#\\s*\\w+"], ["str", DQ + "|" + SQ],
      ["kw", words(C_KW)], ["num", NUM], ["fn", FN], ["type", TYPE],
    ],
    go: [
      ["com", BLOCK], ["com", LINE("//")], ["str", DQ + "|" + BT + "|" + SQ],
      ["kw", words(GO_KW)], ["num", NUM], ["fn", FN], ["type", TYPE],
    ],
    rust: [
      ["com", BLOCK], ["com", LINE("//")], ["str", DQ], ["type", "#!?\\[[^\\]\\n]*\\]"],
      ["kw", words(RS_KW)], ["num", NUM], ["fn", "\\b[a-z_][\\w]*!?(?=\\s*\\()"], ["type", TYPE],
    ],
    shell: [
      ["com", "(?:^|(?<=\\s))#.*"], ["str", DQ + "|" + SQ], ["attr", "\\$\\{[^}\\n]*\\}|\\$[\\w@#?*!$-]"],
      ["kw", words(SH_KW)], ["num", NUM],
    ],
    sql: [["com", BLOCK], ["com", LINE("--")], ["str", SQ + "|" + DQ], ["kw", words(SQL_KW)], ["num", NUM], ["fn", FN]],
    ruby: [["com", LINE("#")], ["str", DQ + "|" + SQ], ["attr", ":[A-Za-z_]\\w*|@{1,2}\\w+"], ["kw", words(RB_KW)], ["num", NUM], ["type", TYPE]],
    lua: [["com", "--\\[\\[[\\s\\S]*?(?:\\]\\]|$(?![\\s\\S]))"], ["com", LINE("--")], ["str", DQ + "|" + SQ], ["kw", words(LUA_KW)], ["num", NUM], ["fn", FN]],
    json: [["key", DQ + "(?=\\s*:)"], ["str", DQ], ["lit", "\\b(?:true|false|null)\\b"], ["num", "-?" + NUM]],
    yaml: [
      ["com", "(?:^|(?<=\\s))#.*"], ["key", "^[ \\t-]*[^\\s:#'\"][^:#\\n]*(?=:(?:\\s|$))"], ["str", DQ + "|" + SQ],
      ["lit", words("true false null yes no on off ~")], ["num", NUM], ["punct", "^---$|^\\.\\.\\.$"],
    ],
    ini: [["com", "^\\s*[#;].*"], ["head", "^\\s*\\[[^\\]\\n]*\\]"], ["key", "^\\s*[\\w.\"'-]+(?=\\s*[=:])"], ["str", DQ + "|" + SQ], ["lit", words("true false")], ["num", NUM]],
    markdown: [["head", "^#{1,6}\\s.*"], ["str", "^```[\\s\\S]*?(?:^```|$(?![\\s\\S]))|`[^`\\n]+`"], ["kw", "\\*\\*[^*\\n]+\\*\\*|__[^_\\n]+__"], ["attr", "\\[[^\\]\\n]*\\]\\([^)\\n]*\\)"], ["punct", "^\\s*(?:[-*+]|\\d+\\.)\\s"], ["com", "^>.*"]],
    markup: [["com", "<!--[\\s\\S]*?(?:-->|$(?![\\s\\S]))"], ["kw", "<!\\w[^>]*>|<\\?[\\s\\S]*?\\?>"], ["tag", "</?[\\w:.-]+|/?>"], ["attr", "\\b[\\w:.-]+(?==)"], ["str", DQ + "|" + SQ]],
    css: [["com", BLOCK], ["str", DQ + "|" + SQ], ["kw", "@[\\w-]+"], ["key", "[\\w-]+(?=\\s*:[^;{}]*[;}])"], ["num", "#[0-9a-fA-F]{3,8}\\b|-?\\d*\\.?\\d+(?:px|em|rem|%|vh|vw|s|ms|deg|fr)?\\b"], ["type", "[.#][\\w-]+"]],
  };

  const compiled = {};
  function lexer(lang) {
    if (!R[lang]) return null;
    if (!compiled[lang]) {
      const flags = lang === "sql" ? "gmi" : "gm";
      compiled[lang] = new RegExp(R[lang].map((r) => "(" + r[1] + ")").join("|"), flags);
    }
    return compiled[lang];
  }

  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
  const esc = (s) => s.replace(/[&<>"]/g, (c) => ESC[c]);

  /** HTML for `text` with token spans; plain escaped text for unknown languages. */
  function highlight(text, lang) {
    const re = lexer(lang);
    if (!re) return esc(text);
    const rules = R[lang];
    let out = "";
    let last = 0;
    re.lastIndex = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m[0] === "") { re.lastIndex += 1; continue; }
      let g = 1;
      while (m[g] === undefined) g += 1;
      out += esc(text.slice(last, m.index));
      out += '<span class="t-' + rules[g - 1][0] + '">' + esc(m[0]) + "</span>";
      last = re.lastIndex;
    }
    return out + esc(text.slice(last));
  }

  window.KlosetHighlight = { highlight, escape: esc, languages: Object.keys(R) };
})();
