"""Vault ACL policy documents (HCL1 or JSON) -> `Policy`.

Two layers, both written for Vault's exact semantics:

1. A small HCL1 lexer/parser (the grammar of `github.com/hashicorp/hcl` v1, which Vault
   uses) that keeps every `path` block as its own item with its line number. pyhcl is
   not used on purpose: it merges duplicate `path` blocks, which changes the meaning of
   a policy (docs/facts/vault.md §1.1). JSON documents (first non-blank character `{`)
   go through the same AST, flattened the way HCL's JSON parser flattens them.
2. The policy decoder: `vault/policy.go` `parseACLPolicyWithTemplating`/`parsePaths`
   plus the relevant parts of HCL's reflection decoder (repeated keys append to lists
   and merge into maps; objects nested in a parameter value list decode into dicts).
   Error texts are Vault's, e.g. `invalid key "bad" on line 2`,
   `path "/": invalid capability "banana"`.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from policies.model import DENY, PathRule, Policy

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


def _go_type(node: Node) -> str:
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


# ------------------------------------------------------------ generic decoding


def _pos_error(node: Node, message: str) -> PolicyParseError:
    return PolicyParseError(f"At {node.line}:{node.col}: {message}", line=node.line)


def _decode_string(name: str, node: Node) -> str:
    """hcl `decodeString`: strings and heredocs, and numbers/bools by their text."""
    if isinstance(node, Literal):
        if node.kind in ("STRING", "HEREDOC"):
            return str(node.value)
        if node.kind in ("NUMBER", "FLOAT", "BOOL"):
            return node.text
    raise _pos_error(node, f"{name}: unknown type for string {_go_type(node)}")


def _slice_items(name: str, node: Node) -> list[Node]:
    """hcl `decodeSlice`: a list, or a single object; a bare literal is an error."""
    if isinstance(node, ListNode):
        return node.items
    if isinstance(node, ObjectNode):
        return [node]
    raise _pos_error(node, f"unknown slice type: {_go_type(node)}")


def _decode_interface(name: str, node: Node, *, in_slice: bool) -> Any:
    """hcl `decodeInterface`: an object directly inside a list becomes a dict; anywhere
    else it becomes a list holding one dict (an HCL1 quirk kept for DeepEqual)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListNode):
        return [
            _decode_interface(f"{name}[{i}]", x, in_slice=True) for i, x in enumerate(node.items)
        ]
    assert isinstance(node, ObjectNode)
    if in_slice:
        return _decode_map_of_interface(name, node)
    return [_decode_map_of_interface(f"{name}[0]", node)]


def _decode_map_of_interface(name: str, node: ObjectNode) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in node.items:
        key = item.keys[0].value
        value: Node = item.value
        if len(item.keys) > 1:
            value = ObjectNode(item.line, 0, [Item(item.keys[1:], item.value, item.assign_line)])
        out[key] = _decode_interface(f"{name}.{key}", value, in_slice=False)
    return out


def _decode_string_list(name: str, nodes: list[Node]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        for i, elem in enumerate(_slice_items(name, node)):
            out.append(_decode_string(f"{name}[{i}]", elem))
    return out


def _decode_param_map(name: str, nodes: list[Node]) -> dict[str, list[Any]]:
    """`map[string][]interface{}`: repeated keys (and repeated blocks) append."""
    out: dict[str, list[Any]] = {}
    for node in nodes:
        if not isinstance(node, ObjectNode):
            raise _pos_error(node, f"{name}: not an object type for map ({_go_type(node)})")
        for item in node.items:
            key = item.keys[0].value
            value: Node = item.value
            if len(item.keys) > 1:
                value = ObjectNode(
                    item.line, 0, [Item(item.keys[1:], item.value, item.assign_line)]
                )
            elems = _slice_items(f"{name}.{key}", value)
            decoded = [
                _decode_interface(f"{name}.{key}[{i}]", e, in_slice=True)
                for i, e in enumerate(elems)
            ]
            out.setdefault(key, []).extend(decoded)
    return out


def _check_keys(
    items: list[Item], valid: frozenset[str], prefix: str = ""
) -> list[PolicyParseError]:
    """hclutil.CheckHCLKeys: every key not in `valid`, with the line of its `=`."""
    errors = []
    for item in items:
        key = item.keys[0].value
        if key not in valid:
            errors.append(
                PolicyParseError(
                    f'{prefix}invalid key "{key}" on line {item.assign_line}', line=item.line
                )
            )
    return errors


def _combine(errors: list[PolicyParseError]) -> PolicyParseError:
    if len(errors) == 1:
        return errors[0]
    text = f"{len(errors)} errors occurred: " + "; ".join(e.vault_message for e in errors)
    return PolicyParseError(text, line=errors[0].line)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_GO_INT = re.compile(r"[+-]?[0-9]+")


def _go_duration(text: str) -> float:
    """Go's `time.ParseDuration`, in seconds: "1h30m", "300s", "1.5h", "250ms"."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        assert m is not None  # the pattern also matches the empty string
        number, unit = m.group(1), m.group(2)
        if number in ("", ".") or m.end() == pos:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
        pos = m.end()
    return sign * total


def parse_duration_second(value: Any) -> float:
    """go-secure-stdlib `parseutil.ParseDurationSecond`, in seconds: numbers are whole
    seconds (floats truncated, as Go's `time.Duration(f) * time.Second`); strings are
    "" (0), an integer of seconds, `<n>d` days, or a Go duration."""
    if isinstance(value, bool):
        raise ValueError("could not parse duration from input")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return float(int(value))
    if isinstance(value, str):
        if value == "":
            return 0.0
        if _GO_INT.fullmatch(value):
            return float(int(value))
        if value.endswith("d"):
            days = value[:-1]
            if not _GO_INT.fullmatch(days):
                raise ValueError(f'strconv.ParseInt: parsing "{days}": invalid syntax')
            return float(int(days)) * 86400
        return _go_duration(value)
    raise ValueError("could not parse duration from input")


# ------------------------------------------------------------- policy decoding

_TOP_KEYS = frozenset({"name", "path"})
_PATH_KEYS = frozenset(
    {
        "comment",
        "policy",
        "capabilities",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
        "subscribe_event_types",
    }
)
# Capabilities policy.go accepts (the newest acl.go also knows `recover`).
_CAPABILITIES = frozenset(
    {"create", "read", "update", "delete", "list", "sudo", "patch", "subscribe", "recover"}
)
_LEGACY = {
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}


def _values(items: list[Item], key: str) -> list[Node]:
    """The values HCL's struct decoder feeds into field `key` (case-insensitive)."""
    out: list[Node] = []
    for item in items:
        if item.keys[0].value.lower() != key:
            continue
        if len(item.keys) > 1:
            out.append(
                ObjectNode(item.line, 0, [Item(item.keys[1:], item.value, item.assign_line)])
            )
        else:
            out.append(item.value)
    return out


def _last_string(items: list[Item], key: str, name: str) -> str | None:
    result = None
    for node in _values(items, key):
        result = _decode_string(name, node)
    return result


def _last_interface(items: list[Item], key: str, name: str) -> Any:
    result = None
    for node in _values(items, key):
        result = _decode_interface(name, node, in_slice=False)
    return result


def parse_policy(text: str, *, name: str = "", file: str | None = None) -> Policy:
    """Parse one ACL policy document the way Vault's `ParseACLPolicy` does.

    `name` overrides the document's own `name = "..."` (Vault's policy store names a
    policy by the API path it was written to); `file` is carried into every rule and
    error for attribution. Raises `PolicyParseError`.
    """
    try:
        return _parse_policy(text, name=name, file=file)
    except PolicyParseError as exc:
        raise exc.located(file) from None


def _parse_policy(text: str, *, name: str, file: str | None) -> Policy:
    root = parse_document(text)
    errors = _check_keys(root.items, _TOP_KEYS)
    if errors:
        raise _combine(errors)
    doc_name = _last_string(root.items, "name", "root.name") or ""
    policy_name = name or doc_name
    rules: list[PathRule] = []
    for item in root.items:
        if item.keys[0].value != "path":
            continue
        rules.append(_parse_path(item, policy_name, file))
    return Policy(name=policy_name, rules=tuple(rules), file=file, text=text)


def _parse_path(item: Item, policy_name: str, file: str | None) -> PathRule:
    key = item.keys[1].value if len(item.keys) > 1 else "path"
    body = item.value
    # The line of the path string (the same as `path` in HCL; in JSON, its own key).
    line = item.keys[1].line if len(item.keys) > 1 else item.keys[0].line

    def fail(message: str) -> PolicyParseError:
        return PolicyParseError(message, line=line)

    if not isinstance(body, ObjectNode):
        raise fail(f'path "{key}": cannot check HCL keys of type {_go_type(body)}')
    errors = _check_keys(body.items, _PATH_KEYS, prefix=f'path "{key}": ')
    if errors:
        raise _combine(errors)
    fields = body.items
    field_name = "root"  # HCL's decoder names fields from "root" in its error texts

    def prefixed(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except PolicyParseError as exc:
            raise PolicyParseError(f'path "{key}": {exc.vault_message}', line=exc.line) from None

    legacy = prefixed(lambda: _last_string(fields, "policy", f"{field_name}.policy"))
    capabilities: list[str] = prefixed(
        lambda: _decode_string_list(f"{field_name}.capabilities", _values(fields, "capabilities"))
    )
    allowed_nodes = _values(fields, "allowed_parameters")
    denied_nodes = _values(fields, "denied_parameters")
    allowed_hcl = prefixed(
        lambda: _decode_param_map(f"{field_name}.allowed_parameters", allowed_nodes)
    )
    denied_hcl = prefixed(
        lambda: _decode_param_map(f"{field_name}.denied_parameters", denied_nodes)
    )
    required = prefixed(
        lambda: _decode_string_list(
            f"{field_name}.required_parameters", _values(fields, "required_parameters")
        )
    )
    subscribe = prefixed(
        lambda: _decode_string_list(
            f"{field_name}.subscribe_event_types", _values(fields, "subscribe_event_types")
        )
    )
    mfa_methods = prefixed(
        lambda: _decode_string_list(f"{field_name}.mfa_methods", _values(fields, "mfa_methods"))
    )
    prefixed(lambda: _last_string(fields, "comment", f"{field_name}.comment"))
    min_raw = prefixed(lambda: _last_interface(fields, "min_wrapping_ttl", "min_wrapping_ttl"))
    max_raw = prefixed(lambda: _last_interface(fields, "max_wrapping_ttl", "max_wrapping_ttl"))
    control_group = _values(fields, "control_group")

    path = key[1:] if key.startswith("/") else key
    if "+*" in path:
        raise fail(f"path \"{path}\": invalid use of wildcards ('+*' is forbidden)")

    if legacy:
        if legacy == "deny":
            capabilities = [DENY]
        elif legacy in _LEGACY:
            capabilities = capabilities + list(_LEGACY[legacy])
        else:
            raise fail(f'path "{key}": invalid policy "{legacy}"')

    caps: set[str] = set()
    for cap in capabilities:
        if cap == DENY:
            # Vault stops here: a deny stanza keeps nothing else (`goto PathFinished`).
            return PathRule(
                path=path,
                capabilities=frozenset({DENY}),
                legacy_policy=legacy,
                line=line,
                policy=policy_name,
                file=file,
            )
        if cap not in _CAPABILITIES:
            raise fail(f'path "{key}": invalid capability "{cap}"')
        caps.add(cap)

    allowed = {k.lower(): v for k, v in allowed_hcl.items()} if allowed_nodes else None
    denied = {k.lower(): v for k, v in denied_hcl.items()} if denied_nodes else None
    min_ttl = _ttl(min_raw, "min_wrapping_ttl", line)
    max_ttl = _ttl(max_raw, "max_wrapping_ttl", line)
    if control_group:
        _check_control_group(control_group, capabilities, line)
    if min_ttl and max_ttl and max_ttl < min_ttl:
        raise fail("max_wrapping_ttl cannot be less than min_wrapping_ttl")
    return PathRule(
        path=path,
        capabilities=frozenset(caps),
        allowed_parameters=allowed,
        denied_parameters=denied,
        required_parameters=tuple(required),
        min_wrapping_ttl=min_ttl,
        max_wrapping_ttl=max_ttl,
        legacy_policy=legacy,
        line=line,
        policy=policy_name,
        file=file,
        subscribe_event_types=tuple(subscribe),
        mfa_methods=tuple(mfa_methods),
    )


def _ttl(raw: Any, field_name: str, line: int) -> float:
    if raw is None:
        return 0.0
    try:
        return parse_duration_second(raw)
    except ValueError as exc:
        raise PolicyParseError(f"error parsing {field_name}: {exc}", line=line) from None


def _check_control_group(nodes: list[Node], capabilities: list[str], line: int) -> None:
    """Control groups are Vault Enterprise and not evaluated here; their definitions
    are still validated as policy.go does, with its messages."""

    def fail(message: str) -> PolicyParseError:
        return PolicyParseError(message, line=line)

    factors = 0
    for node in nodes:
        if not isinstance(node, ObjectNode):
            raise fail(f"At {node.line}:{node.col}: not an object type for struct")
        ttl = _last_interface(node.items, "ttl", "control_group.ttl")
        if ttl is not None:
            try:
                parse_duration_second(ttl)
            except ValueError as exc:
                raise fail(f"error parsing control group max ttl: {exc}") from None
        for factor_map in _values(node.items, "factor"):
            if not isinstance(factor_map, ObjectNode):
                raise fail("no control_group factor provided")
            for factor in factor_map.items:
                factors += 1
                _check_factor(factor, capabilities, fail)
    if factors == 0:
        raise fail("no control group factors provided")


def _check_factor(
    factor: Item, capabilities: list[str], fail: Callable[[str], PolicyParseError]
) -> None:
    body = factor.value
    identity = _values(body.items, "identity") if isinstance(body, ObjectNode) else []
    if not identity or not isinstance(identity[-1], ObjectNode):
        raise fail("no control_group factor provided")
    fields = identity[-1].items
    groups = _decode_string_list("group_ids", _values(fields, "group_ids"))
    groups += _decode_string_list("group_names", _values(fields, "group_names"))
    approvals_node = _values(fields, "approvals")
    approvals = 0
    if approvals_node:
        raw = approvals_node[-1]
        text = raw.value if isinstance(raw, Literal) else None
        if isinstance(text, bool) or not isinstance(text, int | str):
            raise fail(f"At {raw.line}:{raw.col}: approvals: unknown type {_go_type(raw)}")
        try:
            approvals = int(text)
        except ValueError:
            raise fail(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
    if approvals <= 0 or not groups:
        raise fail("must provide more than one identity group and approvals > 0")
    assert isinstance(body, ObjectNode)
    controlled = _decode_string_list(
        "controlled_capabilities", _values(body.items, "controlled_capabilities")
    )
    if any(c not in capabilities for c in controlled):
        raise fail(
            "control group factor capabilities must be a subset of the policy's capabilities"
        )


# ------------------------------------------------------------------ rendering


def _render_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "$" or ord(ch) < 0x20 or ch == "\x7f":
            # `$` is escaped so that `${` never starts an HCL1 interpolation.
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _render_value(value: Any, *, in_list: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if not re.fullmatch(r"-?[0-9]+\.[0-9]+(e[+-]?[0-9]+)?", text):
            raise ValueError(f"cannot render float {value!r} in HCL")
        return text
    if isinstance(value, str):
        return _render_string(value)
    if isinstance(value, dict):
        if not in_list:
            raise ValueError("HCL1 decodes an object outside a list as a list of objects")
        inner = " ".join(
            f"{_render_string(k)} = {_render_value(v, in_list=False)}" for k, v in value.items()
        )
        return "{ " + inner + " }"
    if isinstance(value, list | tuple):
        if len(value) == 1 and isinstance(value[0], dict) and not in_list:
            # HCL1 reads `k = { ... }` inside an object as `[{ ... }]`.
            return _render_value(value[0], in_list=True)
        return "[" + ", ".join(_render_value(v, in_list=True) for v in value) + "]"
    raise ValueError(f"cannot render {type(value).__name__} in HCL")


def _render_params(name: str, params: dict[str, list[Any]]) -> str:
    lines = [f"  {name} = {{"]
    for key, values in params.items():
        lines.append(f"    {_render_string(key)} = {_render_value(list(values), in_list=False)}")
    lines.append("  }")
    return "\n".join(lines)


def render_policy(policy: Policy) -> str:
    """HCL text for `policy` that `parse_policy` reads back to the same rules (the
    legacy `policy =` form is rendered as the capabilities it expands to)."""
    out: list[str] = []
    if policy.name:
        out.append(f"name = {_render_string(policy.name)}")
    for rule in policy.rules:
        # parse_policy strips one leading `/`; give it one to strip when the path has it.
        written = "/" + rule.path if rule.path.startswith("/") else rule.path
        out.append(f"path {_render_string(written)} {{")
        caps = sorted(rule.capabilities)
        out.append(f"  capabilities = [{', '.join(_render_string(c) for c in caps)}]")
        if rule.allowed_parameters is not None:
            out.append(_render_params("allowed_parameters", rule.allowed_parameters))
        if rule.denied_parameters is not None:
            out.append(_render_params("denied_parameters", rule.denied_parameters))
        if rule.required_parameters:
            required = ", ".join(_render_string(p) for p in rule.required_parameters)
            out.append(f"  required_parameters = [{required}]")
        if rule.min_wrapping_ttl:
            out.append(f"  min_wrapping_ttl = {_render_ttl(rule.min_wrapping_ttl)}")
        if rule.max_wrapping_ttl:
            out.append(f"  max_wrapping_ttl = {_render_ttl(rule.max_wrapping_ttl)}")
        for name, values in (
            ("mfa_methods", rule.mfa_methods),
            ("subscribe_event_types", rule.subscribe_event_types),
        ):
            if values:
                out.append(f"  {name} = [{', '.join(_render_string(v) for v in values)}]")
        out.append("}")
    return "\n".join(out) + "\n"


def _render_ttl(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else _render_string(f"{seconds}s")
