"""The Vault ACL policy decoder: an HCL/JSON AST -> `Policy`.

`vault/policy.go` `parseACLPolicyWithTemplating`/`parsePaths` plus the relevant parts of
HCL's reflection decoder (repeated keys append to lists and merge into maps; objects
nested in a parameter value list decode into dicts). Error texts are Vault's, e.g.
`invalid key "bad" on line 2`, `path "/": invalid capability "banana"`
(docs/facts/vault.md §1.1). Durations (`min/max_wrapping_ttl`, control group `ttl`) go
through keybroker's one duration parser, broker/durations.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.durations import parse_duration_second
from policies.hcl_parser import (
    Item,
    ListNode,
    Literal,
    Node,
    ObjectNode,
    PolicyParseError,
    go_type,
    parse_document,
)
from policies.model import DENY, PathRule, Policy

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
    raise _pos_error(node, f"{name}: unknown type for string {go_type(node)}")


def _slice_items(name: str, node: Node) -> list[Node]:
    """hcl `decodeSlice`: a list, or a single object; a bare literal is an error."""
    if isinstance(node, ListNode):
        return node.items
    if isinstance(node, ObjectNode):
        return [node]
    raise _pos_error(node, f"unknown slice type: {go_type(node)}")


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
            raise _pos_error(node, f"{name}: not an object type for map ({go_type(node)})")
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
        raise fail(f'path "{key}": cannot check HCL keys of type {go_type(body)}')
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
            raise fail(f"At {raw.line}:{raw.col}: approvals: unknown type {go_type(raw)}")
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
