"""The KV version 2 backend's paths (DOC api-docs/secret/kv/kv-v2.mdx, docs/facts/vault.md §3).

`data/` and `metadata/` have existence checks, so the first write of a key needs
`create` and later writes `update`; `delete/`, `undelete/`, `destroy/` and `config` are
always `update` (§1.3). `data/` paths never end in `/` (pattern `.*?[^/]$`).
"""

from __future__ import annotations

import re
from typing import Any

from keybroker_dev.devvault.errors import bad_request
from keybroker_dev.devvault.kv import KVStore
from keybroker_dev.devvault.params import as_int
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, PathSpec, spec

Match = re.Match[str]


def _subkeys(value: Any, depth: int, level: int = 1) -> Any:
    if not isinstance(value, dict):
        return None
    if depth and level >= depth:
        return {k: None for k in value}
    return {k: _subkeys(v, depth, level + 1) for k, v in value.items()}


class KVBackend(Backend):
    type = "kv"

    def __init__(self, store: KVStore) -> None:
        self.store = store

    # existence checks ------------------------------------------------------------
    def _exists(self, ctx: Ctx, m: Match) -> bool:
        return self.store.exists(m["path"])

    # data -------------------------------------------------------------------------
    def read_data(self, ctx: Ctx, m: Match) -> Result:
        version = as_int(ctx.data, "version", 0)
        return Result(data=self.store.read(m["path"], version))

    def write_data(self, ctx: Ctx, m: Match) -> Result:
        return Result(data=self.store.write(m["path"], ctx.data))

    def patch_data(self, ctx: Ctx, m: Match) -> Result:
        return Result(data=self.store.patch(m["path"], ctx.data))

    def delete_data(self, ctx: Ctx, m: Match) -> None:
        self.store.delete_latest(m["path"])

    def delete_versions(self, ctx: Ctx, m: Match) -> None:
        self.store.delete_versions(m["path"], ctx.data)

    def undelete(self, ctx: Ctx, m: Match) -> None:
        self.store.undelete(m["path"], ctx.data)

    def destroy(self, ctx: Ctx, m: Match) -> None:
        self.store.destroy(m["path"], ctx.data)

    def subkeys(self, ctx: Ctx, m: Match) -> Result:
        view = self.store.read(m["path"], as_int(ctx.data, "version", 0))
        depth = as_int(ctx.data, "depth", 0)
        if depth < 0:
            raise bad_request("depth must be non-negative")
        return Result(data={"subkeys": _subkeys(view["data"], depth), "metadata": view["metadata"]})

    # metadata ---------------------------------------------------------------------
    def read_metadata(self, ctx: Ctx, m: Match) -> Result:
        return Result(data=self.store.read_metadata(m["path"]))

    def write_metadata(self, ctx: Ctx, m: Match) -> Result:
        if not m["path"] or m["path"].endswith("/"):
            raise bad_request("missing path")
        return Result(warnings=self.store.write_metadata(m["path"], ctx.data) or None)

    def patch_metadata(self, ctx: Ctx, m: Match) -> Result:
        if not m["path"]:
            raise bad_request("missing path")
        return Result(warnings=self.store.write_metadata(m["path"], ctx.data, patch=True) or None)

    def delete_metadata(self, ctx: Ctx, m: Match) -> None:
        self.store.delete_metadata(m["path"])

    def list_keys(self, ctx: Ctx, m: Match) -> Result:
        return Result(data={"keys": self.store.list(m["path"])})

    # config -----------------------------------------------------------------------
    def read_config(self, ctx: Ctx, m: Match) -> Result:
        return Result(data=self.store.config.to_dict())

    def write_config(self, ctx: Ctx, m: Match) -> None:
        self.store.write_config(ctx.data)

    def paths(self) -> list[PathSpec]:
        key = r"(?P<path>.*[^/])"
        return [
            spec("config", read=self.read_config, update=self.write_config),
            spec(
                "data/" + key,
                existence=self._exists,
                read=self.read_data,
                update=self.write_data,
                patch=self.patch_data,
                delete=self.delete_data,
            ),
            spec(
                "metadata/?(?P<path>.*)",
                existence=self._exists,
                read=self.read_metadata,
                update=self.write_metadata,
                patch=self.patch_metadata,
                delete=self.delete_metadata,
                list=self.list_keys,
            ),
            spec("delete/" + key, update=self.delete_versions),
            spec("undelete/" + key, update=self.undelete),
            spec("destroy/" + key, update=self.destroy),
            spec("subkeys/" + key, read=self.subkeys),
        ]
