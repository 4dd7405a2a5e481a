"""Backends, their path specs, and the per-request context handlers receive.

Like Vault's logical framework: each mount holds a backend; a backend is a list of
path patterns (relative to the mount) with one callback per operation, an optional
existence check (which turns `update` into `create` for new resources, docs/facts/vault.md
§1.3) and the operations that are root-protected (need `sudo`, §1.7).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keybroker_dev.devvault.leases import LeaseConfig
from keybroker_dev.devvault.protocol import Request, Result

if TYPE_CHECKING:
    from keybroker_dev.devvault.core import Core
    from keybroker_dev.devvault.tokens import TokenEntry


@dataclass
class Ctx:
    core: Core
    request: Request
    operation: str  # read list create update delete patch
    path: str  # full logical path (ACL path)
    mount: MountEntry
    data: dict[str, Any]
    token: TokenEntry | None = None
    root_privs: bool = False

    @property
    def remote_addr(self) -> str:
        return self.request.remote_addr


Handler = Callable[[Ctx, "re.Match[str]"], Result | None]
Existence = Callable[[Ctx, "re.Match[str]"], bool]


@dataclass(frozen=True)
class PathSpec:
    pattern: re.Pattern[str]
    ops: Mapping[str, Handler]
    existence: Existence | None = None
    unauthenticated: bool = False
    sudo_ops: frozenset[str] = frozenset()

    def handler(self, operation: str) -> Handler | None:
        found = self.ops.get(operation)
        if found is None and operation == "create":
            found = self.ops.get("update")
        return found


def spec(
    regex: str,
    *,
    existence: Existence | None = None,
    unauthenticated: bool = False,
    sudo: tuple[str, ...] = (),
    **ops: Handler,
) -> PathSpec:
    return PathSpec(re.compile(regex + r"\Z"), ops, existence, unauthenticated, frozenset(sudo))


class Backend:
    """A mounted engine: `type` and its path specs."""

    type: str = ""

    def paths(self) -> list[PathSpec]:
        raise NotImplementedError

    def match(self, rel: str) -> tuple[PathSpec, re.Match[str]] | None:
        for candidate in self._compiled():
            found = candidate.pattern.match(rel)
            if found:
                return candidate, found
        return None

    def _compiled(self) -> list[PathSpec]:
        cached = self.__dict__.get("_specs")
        if cached is None:
            cached = self.paths()
            self.__dict__["_specs"] = cached
        return cached


@dataclass
class MountEntry:
    path: str  # "kv/" (secrets) or "approle/" (auth; routed under "auth/approle/")
    type: str
    backend: Backend
    accessor: str
    uuid: str
    is_auth: bool = False
    description: str = ""
    options: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    local: bool = False
    seal_wrap: bool = False
    # Tuned through sys/mounts/:path/tune or sys/auth/:path/tune; the token store's
    # mount shares the token store's own object.
    leases: LeaseConfig = field(default_factory=LeaseConfig)

    @property
    def route_prefix(self) -> str:
        return ("auth/" + self.path) if self.is_auth else self.path

    def to_dict(self) -> dict[str, Any]:
        """As `GET sys/mounts` / `GET sys/auth` list one mount (DOC system/mounts.mdx)."""
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": int(self.leases.default_lease_ttl),
                "force_no_cache": False,
                "max_lease_ttl": int(self.leases.max_lease_ttl),
                **self.config,
            },
            "description": self.description,
            "external_entropy_access": False,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.type,
            "uuid": self.uuid,
        }
