"""The invariants file (docs/contracts.md §5): principals, invariants, matrix path classes.

Format (every key beyond `principals` and `invariants` is an optional extension):

    principals:                 # optional: a principal is a set of policy names;
      site: [keybroker-site-read] # default: the layout's principals (broker/layout.py)
    admin_principals: [admin]   # exempt from the "sudo outside admin" lint rule
    invariants:
      - id: site-never-touches-robot-keys
        principal: site         # or a list of principals: [site, robot]
        deny: [read, list, create, update, patch, delete]   # or allow: [...]
        paths: ["{mount}/data/robot/*"]   # {name}: a layout name (VaultLayout.names)
        except: ["..."]         # paths matching these are left out
        description: "..."
    matrix:                     # rows of `keybroker policy matrix`
      - {label: "site key data", path: "exchange-keys/data/site/+/+"}

Every error names the file and the line of the offending node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml

from policies.analysis.glob import PatternError, validate_pattern
from policies.model import ANALYSED_CAPABILITIES

if TYPE_CHECKING:
    from broker.layout import VaultLayout

# What an invariant may talk about: Vault's operations that need a capability, and sudo.
INVARIANT_CAPABILITIES = ANALYSED_CAPABILITIES
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# libyaml's loader when PyYAML was built with it: several times faster on big files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Effect = Literal["deny", "allow"]


class InvariantsError(Exception):
    """A malformed invariants file; `file` and `line` point at the offending node."""

    def __init__(self, message: str, *, file: str, line: int) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.message = message
        self.file = file
        self.line = line


@dataclass(frozen=True)
class Invariant:
    id: str
    principals: tuple[str, ...]
    effect: Effect
    capabilities: tuple[str, ...]
    paths: tuple[str, ...]
    excepts: tuple[str, ...]
    description: str
    file: str
    line: int


@dataclass(frozen=True)
class PathClass:
    label: str
    path: str
    line: int


@dataclass(frozen=True)
class Invariants:
    principals: dict[str, tuple[str, ...]]
    principal_lines: dict[str, int]
    admin_principals: tuple[str, ...]
    invariants: tuple[Invariant, ...]
    path_classes: tuple[PathClass, ...]
    file: str

    def admin_policies(self) -> frozenset[str]:
        return frozenset(name for p in self.admin_principals for name in self.principals.get(p, ()))


def default_invariants_path() -> Path:
    return Path(str(resources.files("policies").joinpath("invariants.yaml")))


@dataclass(frozen=True)
class Defaults:
    """What the invariants file may leave to the layout: its principals, and the names
    that `{placeholder}`s in patterns stand for."""

    principals: Mapping[str, tuple[str, ...]]
    names: Mapping[str, str]


def layout_defaults(layout: VaultLayout | None = None) -> Defaults:
    """The principals and names of `layout` (default: broker/layout.py's shipped one)."""
    from broker.layout import build_layout

    layout = layout or build_layout()
    return Defaults({p.name: p.policies for p in layout.principals()}, layout.names())


def load_invariants(path: Path | None = None, defaults: Defaults | None = None) -> Invariants:
    """Parse an invariants file; `defaults` (the shipped layout's unless given) fill in
    the principals and `{placeholders}` the file leaves out."""
    path = path or default_invariants_path()
    defaults = defaults or layout_defaults()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvariantsError(f"cannot read invariants: {exc}", file=str(path), line=0) from exc
    return parse_invariants(text, file=str(path), defaults=defaults)


def parse_invariants(
    text: str, *, file: str = "<invariants>", defaults: Defaults | None = None
) -> Invariants:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InvariantsError(f"invalid YAML: {exc.problem}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise InvariantsError(f"invalid YAML: {exc}", file=file, line=0) from exc
    return _Reader(file, defaults).document(root)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Walks the composed YAML tree so that every value keeps its line number."""

    def __init__(self, file: str, defaults: Defaults | None) -> None:
        self.file = file
        self.defaults = defaults

    def expand(self, node: yaml.Node, text: str) -> str:
        """`{name}` placeholders replaced by the layout's names."""
        names = self.defaults.names if self.defaults else {}

        def one(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                known = ", ".join(sorted(names)) or "none without a layout"
                raise self.fail(node, f"unknown placeholder {match.group(0)} (known: {known})")
            return names[match.group(1)]

        return _PLACEHOLDER.sub(one, text)

    def fail(self, node: yaml.Node | None, message: str) -> InvariantsError:
        return InvariantsError(message, file=self.file, line=_line(node) if node else 1)

    def mapping(self, node: yaml.Node, what: str, keys: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = self.string(key_node, f"a key of {what}")
            if key not in keys:
                raise self.fail(key_node, f"unknown key {key!r} in {what}")
            if key in out:
                raise self.fail(key_node, f"duplicate key {key!r} in {what}")
            out[key] = value
        return out

    def string(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            raise self.fail(node, f"{what} must be a string")
        value = str(node.value)
        if not value:
            raise self.fail(node, f"{what} must not be empty")
        return value

    def strings(self, node: yaml.Node, what: str, *, allow_empty: bool = False) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        if not node.value and not allow_empty:
            raise self.fail(node, f"{what} must not be empty")
        return [self.string(item, f"an item of {what}") for item in node.value]

    def document(self, root: yaml.Node | None) -> Invariants:
        if root is None:
            raise InvariantsError("empty invariants file", file=self.file, line=1)
        top = self.mapping(
            root, "the invariants file", {"principals", "admin_principals", "invariants", "matrix"}
        )
        if "principals" in top:
            principals, lines = self.principals(top["principals"])
        elif self.defaults is not None:
            principals = {n: tuple(p) for n, p in self.defaults.principals.items()}
            lines = dict.fromkeys(principals, 0)  # 0: from the layout, not this file
        else:
            raise self.fail(root, "missing key 'principals'")
        admins: tuple[str, ...] = ()
        if "admin_principals" in top:
            node = top["admin_principals"]
            admins = tuple(self.strings(node, "admin_principals", allow_empty=True))
            for name, item in zip(admins, node.value, strict=True):
                if name not in principals:
                    raise self.fail(item, f"unknown principal {name!r}")
        elif "admin" in principals:
            admins = ("admin",)
        invariants: tuple[Invariant, ...] = ()
        if "invariants" in top:
            invariants = self.invariants(top["invariants"], principals)
        classes: tuple[PathClass, ...] = ()
        if "matrix" in top:
            classes = self.path_classes(top["matrix"])
        return Invariants(principals, lines, admins, invariants, classes, self.file)

    def principals(self, node: yaml.Node) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise self.fail(node, "principals must be a non-empty mapping of name -> [policy, ...]")
        out: dict[str, tuple[str, ...]] = {}
        lines: dict[str, int] = {}
        for key_node, value in node.value:
            name = self.string(key_node, "a principal name")
            if name in out:
                raise self.fail(key_node, f"duplicate principal {name!r}")
            # Vault normalises policy names: lower case, surrounding blanks removed (§1.8).
            policies = [p.strip().lower() for p in self.strings(value, f"principal {name!r}")]
            out[name] = tuple(dict.fromkeys(policies))
            lines[name] = _line(key_node)
        return out, lines

    def invariants(
        self, node: yaml.Node, principals: dict[str, tuple[str, ...]]
    ) -> tuple[Invariant, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "invariants must be a list")
        keys = {"id", "principal", "deny", "allow", "paths", "except", "description"}
        seen: set[str] = set()
        out: list[Invariant] = []
        for item in node.value:
            fields = self.mapping(item, "an invariant", keys)
            for required in ("id", "principal", "paths"):
                if required not in fields:
                    raise self.fail(item, f"invariant is missing {required!r}")
            inv_id = self.string(fields["id"], "id")
            if not _ID.match(inv_id):
                raise self.fail(fields["id"], f"invalid invariant id {inv_id!r}")
            if inv_id in seen:
                raise self.fail(fields["id"], f"duplicate invariant id {inv_id!r}")
            seen.add(inv_id)
            who = self.principal_names(fields["principal"], principals)
            effects = [e for e in ("deny", "allow") if e in fields]
            if len(effects) != 1:
                raise self.fail(item, f"invariant {inv_id!r} needs exactly one of deny/allow")
            effect: Effect = "deny" if effects[0] == "deny" else "allow"
            caps = self.capabilities(fields[effect], effect)
            paths = self.patterns(fields["paths"], "paths")
            excepts = self.patterns(fields["except"], "except") if "except" in fields else ()
            description = (
                self.string(fields["description"], "description") if "description" in fields else ""
            )
            out.append(
                Invariant(
                    id=inv_id,
                    principals=who,
                    effect=effect,
                    capabilities=caps,
                    paths=paths,
                    excepts=excepts,
                    description=description,
                    file=self.file,
                    line=_line(item),
                )
            )
        return tuple(out)

    def principal_names(
        self, node: yaml.Node, principals: dict[str, tuple[str, ...]]
    ) -> tuple[str, ...]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        names = (
            self.strings(node, "principal")
            if isinstance(node, yaml.SequenceNode)
            else [self.string(node, "principal")]
        )
        for name, item in zip(names, items, strict=True):
            if name not in principals:
                raise self.fail(item, f"unknown principal {name!r}")
        return tuple(dict.fromkeys(names))

    def capabilities(self, node: yaml.Node, effect: str) -> tuple[str, ...]:
        caps = self.strings(node, effect)
        for cap, item in zip(caps, node.value, strict=True):
            if cap not in INVARIANT_CAPABILITIES:
                raise self.fail(
                    item,
                    f"unknown capability {cap!r} (expected one of "
                    f"{', '.join(INVARIANT_CAPABILITIES)})",
                )
        return tuple(dict.fromkeys(caps))

    def patterns(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        patterns = self.strings(node, what)
        out: list[str] = []
        for pattern, item in zip(patterns, node.value, strict=True):
            try:
                out.append(validate_pattern(self.expand(item, pattern)).text)
            except PatternError as exc:
                raise self.fail(item, str(exc)) from exc
        return tuple(out)

    def path_classes(self, node: yaml.Node) -> tuple[PathClass, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "matrix must be a list of {label, path}")
        out: list[PathClass] = []
        for item in node.value:
            fields = self.mapping(item, "a matrix row", {"label", "path"})
            if "label" not in fields or "path" not in fields:
                raise self.fail(item, "a matrix row needs 'label' and 'path'")
            try:
                raw = self.string(fields["path"], "path")
                path = validate_pattern(self.expand(fields["path"], raw)).text
            except PatternError as exc:
                raise self.fail(fields["path"], str(exc)) from exc
            label = self.expand(fields["label"], self.string(fields["label"], "label"))
            out.append(PathClass(label, path, _line(item)))
        return tuple(out)
