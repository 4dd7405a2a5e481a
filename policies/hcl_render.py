"""`Policy` -> HCL text that `parse_policy` reads back to the same rules."""

from __future__ import annotations

import re
from typing import Any

from policies.model import Policy

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
