"""The `cubbyhole/` backend: private storage per token (DOC secrets/cubbyhole.mdx).

Each token sees only its own cubbyhole; it disappears with the token. No existence
check (writes are `update`). Batch tokens have no cubbyhole (DOC concepts/tokens.mdx).
"""

from __future__ import annotations

import re
from typing import Any

from keybroker_dev.devvault.errors import bad_request, not_found
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, PathSpec, spec

Match = re.Match[str]


def _box(ctx: Ctx) -> dict[str, dict[str, Any]]:
    token = ctx.token
    if token is None or token.type == "batch":
        raise bad_request("cubbyhole operations are only supported by service tokens")
    return ctx.core.cubbyholes.setdefault(token.id, {})


def read(ctx: Ctx, m: Match) -> Result:
    value = _box(ctx).get(m["path"])
    if value is None:
        raise not_found()
    return Result(data=dict(value))


def write(ctx: Ctx, m: Match) -> None:
    if not ctx.data:
        raise bad_request("missing data fields")
    _box(ctx)[m["path"]] = dict(ctx.data)


def delete(ctx: Ctx, m: Match) -> None:
    _box(ctx).pop(m["path"], None)


def list_keys(ctx: Ctx, m: Match) -> Result:
    prefix = m["path"]
    keys = set()
    for key in _box(ctx):
        if key.startswith(prefix):
            head, sep, _ = key[len(prefix) :].partition("/")
            keys.add(head + "/" if sep else head)
    if not keys:
        raise not_found()
    return Result(data={"keys": sorted(keys)})


class CubbyholeBackend(Backend):
    type = "cubbyhole"

    def paths(self) -> list[PathSpec]:
        return [
            spec(r"(?P<path>(?:.*/)?)", list=list_keys),
            spec(r"(?P<path>.*[^/])", read=read, update=write, delete=delete),
        ]
