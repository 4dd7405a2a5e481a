"""HCL1 and JSON documents -> an AST that keeps every block, with its line.

The grammar of `github.com/hashicorp/hcl` v1, which Vault uses for policies. pyhcl is
not used on purpose: it merges duplicate `path` blocks, which changes the meaning of a
policy (docs/facts/vault.md §1.1). JSON documents (first non-blank character `{`) go
through the same AST, flattened the way HCL's JSON parser flattens them. The policy
meaning of the AST is decoded in policies/hcl_policy.py.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Deepest nesting of objects/lists accepted (Vault has no limit; policies use 3 or 4).
MAX_NESTING = 64


class PolicyParseError(ValueError):
    """A policy document Vault would reject.

    `vault_message` is Vault's own error text (without the `failed to parse policy: `
    prefix); `str()` names the file and line as well. `line` is 1-based, or None when
    the error has no single location.
    """

    def __init__(self, vault_message: str, *, line: int | None = None, file: str | None = None):
        self.vault_message = vault_message
        self.line = line
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "<policy>"
        if self.line:
            where = f"{where}:{self.line}"
        return f"{where}: failed to parse policy: {self.vault_message}"

    def located(self, file: str | None) -> PolicyParseError:
        """The same error, attributed to `file` (when it had no file yet)."""
        if self.file or not file:
            return self
        return PolicyParseError(self.vault_message, line=self.line, file=file)


# --------------------------------------------------------------------------- AST


@dataclass
class Node:
    line: int
    col: int


@dataclass
class Literal(Node):
    kind: str  # NUMBER, FLOAT, BOOL, STRING, HEREDOC, NULL
    value: Any
    text: str


@dataclass
class ListNode(Node):
    items: list[Node] = field(default_factory=list)


@dataclass
class ObjectNode(Node):
    items: list[Item] = field(default_factory=list)


@dataclass
class Key:
    value: str
    line: int
    col: int


@dataclass
class Item:
    keys: list[Key]
    value: Node
    assign_line: int  # line of `=` / `:`; 0 for a block (`path "x" {`), as in HCL's AST

    @property
    def line(self) -> int:
        return self.keys[0].line if self.keys else self.value.line


def go_type(node: Node) -> str:
    """The Go AST type name HCL puts into its decode errors."""
    if isinstance(node, Literal):
        return "*ast.LiteralType"
    if isinstance(node, ListNode):
        return "*ast.ListType"
    return "*ast.ObjectType"


# ------------------------------------------------------------------------- lexer


@dataclass
class _Tok:
    kind: str  # IDENT STRING HEREDOC NUMBER FLOAT BOOL NULL LBRACE RBRACE LBRACK RBRACK
    #            ASSIGN COMMA EOF
    text: str
    value: Any
    line: int
    col: int


_PUNCT = {"{": "LBRACE", "}": "RBRACE", "[": "LBRACK", "]": "RBRACK", ",": "COMMA"}
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "/": "/",
}
_BLANK = re.compile(r"[ \t\r\n\ufeff]*")
# A string without escapes or `$`: the common case, taken in one step.
_SIMPLE_STRING = re.compile(r'"([^"\\\n$]*)"')
_BLANK_OR_COMMENT = r"(?:[ \t\r\n\ufeff]+|//[^\n]*|/\*(?:[^*]|\*(?!/))*\*/{hash})+"
_FAST_TOKENS = (
    r"(?P<blank>{blank})|(?P<punct>[{{}}\[\],])|(?P<assign>{assign})"
    r'|(?P<string>"[^"\\\n$]*")|(?P<ident>[^\W\d][\w.\-]*)'
)
_FAST_HCL = re.compile(
    _FAST_TOKENS.format(blank=_BLANK_OR_COMMENT.format(hash=r"|#[^\n]*"), assign="=")
)
_FAST_JSON = re.compile(_FAST_TOKENS.format(blank=_BLANK_OR_COMMENT.format(hash=""), assign=":"))
_NUMBER = re.compile(r"-?(0[xX][0-9a-fA-F]+|[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)")


# HCL1 identifiers: a letter or `_`, then letters, digits, `_`, `-` and `.`.
_IDENT = re.compile(r"[^\W\d][\w.\-]*")


class _Lexer:
    def __init__(self, text: str, *, json_mode: bool) -> None:
        self.text = text
        self.json = json_mode
        self.pos = 0
        # Offsets of every newline: line/column come from the position by bisection,
        # so scanning never counts characters one by one.
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    @property
    def line(self) -> int:
        return bisect.bisect_left(self._newlines, self.pos) + 1

    @property
    def col(self) -> int:
        index = bisect.bisect_left(self._newlines, self.pos)
        start = self._newlines[index - 1] + 1 if index else 0
        return self.pos - start + 1

    def error(
        self, message: str, line: int | None = None, col: int | None = None
    ) -> PolicyParseError:
        line = self.line if line is None else line
        col = self.col if col is None else col
        return PolicyParseError(f"At {line}:{col}: {message}", line=line)

    def _advance(self, n: int = 1) -> None:
        self.pos += n

    def _skip_blank(self) -> None:
        text = self.text
        while True:
            blank = _BLANK.match(text, self.pos)
            assert blank is not None  # the pattern also matches the empty string
            self.pos = blank.end()
            if (not self.json and text.startswith("#", self.pos)) or text.startswith(
                "//", self.pos
            ):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("comment not terminated")
                self.pos = end + 2
            else:
                return

    def tokens(self) -> list[_Tok]:
        """All tokens. The common ones (blanks, comments, punctuation, plain strings,
        identifiers) come from one regular expression; anything else (escapes,
        heredocs, numbers, errors) goes through the character-level scanner."""
        text = self.text
        size = len(text)
        fast = _FAST_JSON if self.json else _FAST_HCL
        out: list[_Tok] = []
        pos, line, line_start = 0, 1, 0
        while pos < size:
            m = fast.match(text, pos)
            if m is None:
                self.pos = pos
                self._skip_blank()
                if self.pos < size:
                    out.append(self._token(self.line, self.col))
                pos = self.pos
                line = self.line
                line_start = pos - self.col + 1
                continue
            kind, end, word = m.lastgroup, m.end(), m.group()
            col = pos - line_start + 1
            if kind == "blank":
                newlines = word.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + word.rfind("\n") + 1
            elif kind == "punct":
                out.append(_Tok(_PUNCT[word], word, None, line, col))
            elif kind == "assign":
                out.append(_Tok("ASSIGN", word, None, line, col))
            elif kind == "string":
                out.append(_Tok("STRING", word, word[1:-1], line, col))
            else:
                out.append(self._word(word, line, col))
            pos = end
        out.append(_Tok("EOF", "", None, line, pos - line_start + 1))
        return out

    def _word(self, word: str, line: int, col: int) -> _Tok:
        if word in ("true", "false"):
            return _Tok("BOOL", word, word == "true", line, col)
        if self.json:
            if word == "null":
                return _Tok("NULL", word, None, line, col)
            raise self.error(f"invalid token {word!r}", line, col)
        return _Tok("IDENT", word, word, line, col)

    def _token(self, line: int, col: int) -> _Tok:
        text = self.text
        ch = text[self.pos]
        if ch in _PUNCT:
            self._advance()
            return _Tok(_PUNCT[ch], ch, None, line, col)
        if (ch == "=" and not self.json) or (ch == ":" and self.json):
            self._advance()
            return _Tok("ASSIGN", ch, None, line, col)
        if ch == '"':
            raw, value = self._string()
            return _Tok("STRING", raw, value, line, col)
        if not self.json and text.startswith("<<", self.pos):
            raw, value = self._heredoc(line, col)
            return _Tok("HEREDOC", raw, value, line, col)
        if ch.isdigit() or (ch == "-" and text[self.pos + 1 : self.pos + 2].isdigit()):
            return self._number(line, col)
        ident = _IDENT.match(text, self.pos)
        if ident is not None:
            self.pos = ident.end()
            return self._word(ident.group(0), line, col)
        raise self.error(f"illegal char {ch!r}", line, col)

    def _number(self, line: int, col: int) -> _Tok:
        m = _NUMBER.match(self.text, self.pos)
        assert m is not None  # the caller saw a digit
        raw = m.group(0)
        self._advance(len(raw))
        if m.group(2) or m.group(3):
            return _Tok("FLOAT", raw, float(raw), line, col)
        digits = raw.lstrip("-")
        if digits.lower().startswith("0x"):
            value = int(digits, 16)
        elif len(digits) > 1 and digits.startswith("0"):
            # Go's strconv.ParseInt(s, 0, 0): a leading 0 means octal.
            if not all(c in "01234567" for c in digits):
                raise self.error(f'strconv.ParseInt: parsing "{raw}": invalid syntax', line, col)
            value = int(digits, 8)
        else:
            value = int(digits)
        return _Tok("NUMBER", raw, -value if raw.startswith("-") else value, line, col)

    def _string(self) -> tuple[str, str]:
        """A double-quoted string; HCL1 keeps `${ ... }` interpolations verbatim."""
        text = self.text
        start = self.pos
        simple = _SIMPLE_STRING.match(text, start)
        if simple is not None:
            self.pos = simple.end()
            return simple.group(0), simple.group(1)
        start_line, start_col = self.line, self.col
        self._advance()
        out: list[str] = []
        depth = 0
        while True:
            if self.pos >= len(text) or (text[self.pos] == "\n" and depth == 0):
                raise self.error("literal not terminated", start_line, start_col)
            ch = text[self.pos]
            if depth == 0 and ch == '"':
                self._advance()
                return text[start : self.pos], "".join(out)
            if not self.json and text.startswith("${", self.pos):
                depth += 1
                out.append("${")
                self._advance(2)
                continue
            if depth and ch == "}":
                depth -= 1
            if ch == "\\" and depth == 0:
                out.append(self._escape())
                continue
            out.append(ch)
            self._advance()

    def _escape(self) -> str:
        text = self.text
        line, col = self.line, self.col
        nxt = text[self.pos + 1 : self.pos + 2]
        if nxt in _SIMPLE_ESCAPES and (nxt != "/" or self.json):
            self._advance(2)
            return _SIMPLE_ESCAPES[nxt]
        width = {"x": 2, "u": 4, "U": 8}.get(nxt)
        if width is not None:
            digits = text[self.pos + 2 : self.pos + 2 + width]
            if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                self._advance(2 + width)
                return chr(int(digits, 16))
        elif nxt and nxt in "01234567" and not self.json:
            digits = text[self.pos + 1 : self.pos + 4]
            if len(digits) == 3 and all(c in "01234567" for c in digits):
                self._advance(4)
                return chr(int(digits, 8))
        raise self.error("invalid escape sequence", line, col)

    def _heredoc(self, line: int, col: int) -> tuple[str, str]:
        text = self.text
        m = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)\r?\n").match(text, self.pos)
        if m is None:
            raise self.error("heredoc expected marker name and a new line", line, col)
        indented, anchor = m.group(1) == "-", m.group(2)
        body_start = m.end()
        lines: list[str] = []
        cursor = body_start
        while True:
            if cursor >= len(text):
                raise self.error("heredoc not terminated", line, col)
            end = text.find("\n", cursor)
            end = len(text) if end < 0 else end
            current = text[cursor:end].rstrip("\r")
            if (current.strip() if indented else current) == anchor:
                closing_indent = current[: len(current) - len(current.lstrip(" \t"))]
                cursor = end
                break
            lines.append(current)
            cursor = end + 1
        self._advance(cursor - self.pos)
        if indented and closing_indent and all(x.startswith(closing_indent) for x in lines):
            lines = [x[len(closing_indent) :] for x in lines]
        value = "".join(x + "\n" for x in lines)
        return text[m.start() : cursor], value


# ------------------------------------------------------------------------ parser


class _Parser:
    def __init__(self, tokens: list[_Tok], *, json_mode: bool) -> None:
        self.toks = tokens
        self.i = 0
        self.json = json_mode
        self.depth = 0

    @contextlib.contextmanager
    def nested(self, tok: _Tok) -> Iterator[None]:
        """Bound the nesting of objects and lists, so hostile input gets a parse error
        instead of exhausting the interpreter stack (real policies nest 3 or 4 deep)."""
        if self.depth >= MAX_NESTING:
            raise self.error(tok, f"objects and lists nest deeper than {MAX_NESTING} levels")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    @staticmethod
    def error(tok: _Tok, message: str) -> PolicyParseError:
        return PolicyParseError(f"At {tok.line}:{tok.col}: {message}", line=tok.line)

    # HCL native ------------------------------------------------------------
    def hcl_document(self) -> ObjectNode:
        root = ObjectNode(1, 1, self.object_items(in_braces=False))
        return root

    def object_items(self, *, in_braces: bool) -> list[Item]:
        items: list[Item] = []
        while True:
            tok = self.tok
            if tok.kind == "EOF":
                if in_braces:
                    raise self.error(tok, "object expected closing RBRACE got: EOF")
                return items
            if in_braces and tok.kind == "RBRACE":
                return items
            items.append(self.object_item())
            if self.tok.kind == "COMMA":  # HCL1 allows commas between object items
                self.next()

    def object_item(self) -> Item:
        keys: list[Key] = []
        while True:
            tok = self.next()
            if tok.kind in ("IDENT", "STRING"):
                keys.append(Key(tok.value, tok.line, tok.col))
            elif tok.kind == "ASSIGN":
                if len(keys) > 1:
                    raise self.error(tok, "nested object expected: LBRACE got: ASSIGN")
                if not keys:
                    raise self.error(tok, "no object keys found!")
                return Item(keys, self.value(), tok.line)
            elif tok.kind == "LBRACE":
                if not keys:
                    raise self.error(tok, "expected: IDENT | STRING got: LBRACE")
                return Item(keys, self.object_body(tok), 0)
            elif tok.kind == "EOF":
                raise self.error(
                    tok,
                    "key '%s' expected start of object ('{') or assignment ('=')"
                    % (keys[-1].value if keys else ""),
                )
            else:
                raise self.error(tok, f"expected: IDENT | STRING | ASSIGN | LBRACE got: {tok.kind}")

    def object_body(self, lbrace: _Tok) -> ObjectNode:
        with self.nested(lbrace):
            items = self.object_items(in_braces=True)
        self.next()  # the RBRACE object_items stopped at
        return ObjectNode(lbrace.line, lbrace.col, items)

    def value(self) -> Node:
        tok = self.next()
        if tok.kind in ("NUMBER", "FLOAT", "BOOL", "STRING", "HEREDOC"):
            return Literal(tok.line, tok.col, tok.kind, tok.value, tok.text)
        if tok.kind == "LBRACE":
            return self.object_body(tok)
        if tok.kind == "LBRACK":
            return self.list_body(tok)
        if tok.kind == "EOF":
            raise self.error(tok, "unexpected EOF")
        raise self.error(tok, f"Unknown token: {tok.kind} {tok.text}")

    def list_body(self, lbrack: _Tok) -> ListNode:
        with self.nested(lbrack):
            return self._list_items(ListNode(lbrack.line, lbrack.col))

    def _list_items(self, node: ListNode) -> ListNode:
        need_comma = False
        while True:
            tok = self.tok
            if tok.kind == "RBRACK":
                self.next()
                return node
            if tok.kind == "COMMA":
                if not need_comma:
                    raise self.error(tok, "unexpected token while parsing list: COMMA")
                self.next()
                need_comma = False
                continue
            if need_comma:
                raise self.error(
                    tok, f"error parsing list, expected comma or list end, got: {tok.kind}"
                )
            if tok.kind in ("NUMBER", "FLOAT", "BOOL", "STRING", "HEREDOC", "LBRACE", "LBRACK"):
                node.items.append(self.value())
                need_comma = True
                continue
            raise self.error(tok, f"unexpected token while parsing list: {tok.kind}")

    # JSON --------------------------------------------------------------------
    def json_document(self) -> ObjectNode:
        tok = self.next()
        if tok.kind != "LBRACE":
            raise self.error(tok, f"expected: LBRACE got: {tok.kind}")
        root = self.json_object(tok)
        end = self.tok
        if end.kind != "EOF":
            raise self.error(end, f"unexpected token after the document: {end.kind}")
        return _flatten_json(root)

    def json_object(self, lbrace: _Tok) -> ObjectNode:
        node = ObjectNode(lbrace.line, lbrace.col)
        if self.tok.kind == "RBRACE":
            self.next()
            return node
        while True:
            key = self.next()
            if key.kind != "STRING":
                raise self.error(key, f"expected: STRING got: {key.kind}")
            colon = self.next()
            if colon.kind != "ASSIGN":
                raise self.error(colon, f"expected: COLON got: {colon.kind}")
            value = self.json_value()
            node.items.append(Item([Key(key.value, key.line, key.col)], value, colon.line))
            sep = self.next()
            if sep.kind == "RBRACE":
                return node
            if sep.kind != "COMMA":
                raise self.error(sep, f"expected: COMMA or RBRACE got: {sep.kind}")

    def json_value(self) -> Node:
        tok = self.next()
        if tok.kind in ("NUMBER", "FLOAT", "BOOL", "STRING"):
            return Literal(tok.line, tok.col, tok.kind, tok.value, tok.text)
        if tok.kind == "NULL":
            # HCL's JSON parser turns null into an empty string literal.
            return Literal(tok.line, tok.col, "STRING", "", '""')
        if tok.kind == "LBRACE":
            with self.nested(tok):
                return self.json_object(tok)
        if tok.kind == "LBRACK":
            with self.nested(tok):
                return self._json_list(ListNode(tok.line, tok.col))
        raise self.error(tok, f"unexpected token: {tok.kind}")

    def _json_list(self, node: ListNode) -> ListNode:
        if self.tok.kind == "RBRACK":
            self.next()
            return node
        while True:
            node.items.append(self.json_value())
            sep = self.next()
            if sep.kind == "RBRACK":
                return node
            if sep.kind != "COMMA":
                raise self.error(sep, f"expected: COMMA or RBRACK got: {sep.kind}")


def _flatten_json(node: Node) -> Any:
    """HCL's `json/parser/flatten.go`: `{"path": {"a": {...}}}` becomes the item
    `path "a" {...}`, and a list of objects becomes repeated items of the same key."""
    if isinstance(node, ListNode):
        node.items = [_flatten_json(x) for x in node.items]
        return node
    if not isinstance(node, ObjectNode):
        return node
    out: list[Item] = []
    pending = list(node.items)
    while pending:
        item = pending.pop(0)
        value = item.value
        if (
            isinstance(value, ObjectNode)
            and value.items
            and all(isinstance(sub.value, ObjectNode) for sub in value.items)
        ):
            expanded = [
                Item(item.keys + sub.keys, sub.value, item.assign_line) for sub in value.items
            ]
            pending[0:0] = expanded
        elif (
            isinstance(value, ListNode)
            and value.items
            and all(isinstance(sub, ObjectNode) for sub in value.items)
        ):
            pending[0:0] = [Item(item.keys, sub, item.assign_line) for sub in value.items]
        else:
            _flatten_json(value)
            out.append(item)
    node.items = out
    return node


def parse_document(text: str) -> ObjectNode:
    """Parse HCL1 (or JSON, when the first non-blank character is `{`) into an AST."""
    json_mode = text.lstrip().startswith("{")
    tokens = _Lexer(text, json_mode=json_mode).tokens()
    parser = _Parser(tokens, json_mode=json_mode)
    return parser.json_document() if json_mode else parser.hcl_document()
