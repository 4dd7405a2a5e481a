"""JSON text that stays readable and fast for reports with tens of thousands of entries.

`json.dumps(indent=...)` falls back to the pure-Python encoder (about 10x slower than the
C one). Here containers are laid out on lines down to `depth` levels; anything deeper
is encoded compactly by the C encoder, one item per line (e.g. one violation per line).
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": ")).encode


def dumps(value: Any, depth: int, indent: str = "  ", _level: int = 0) -> str:
    if _level >= depth or not isinstance(value, dict | list) or not value:
        return _COMPACT(value)
    pad, inner = indent * _level, indent * (_level + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{_COMPACT(str(k))}: {dumps(v, depth, indent, _level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumps(v, depth, indent, _level + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"
