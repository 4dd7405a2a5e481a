"""Transport-neutral request and response objects shared by the HTTP layer and the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str  # HTTP method, upper case (LIST included)
    path: str  # logical path after /v1/, no leading slash, e.g. "kv/data/foo"
    query: Mapping[str, str]
    headers: Mapping[str, str] = field(repr=False)  # lower-cased names; carry the token
    body: bytes = field(repr=False)  # may carry secrets
    remote_addr: str
    remote_port: int = 0


@dataclass
class Response:
    status: int
    body: dict[str, Any] | None = None  # None -> no body (204 or HEAD)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    """What a route handler returns: Vault's logical.Response, before the envelope."""

    data: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    warnings: list[str] | None = None
    status: int | None = None  # e.g. 404 with a body for soft-deleted KV versions
    raw: dict[str, Any] | None = None  # complete body, no envelope (sys/health, sys/init)
    inject_top_level: bool = False  # HTTPSysInjector routes copy data keys to the top

    @property
    def empty(self) -> bool:
        return self.data is None and self.auth is None and self.raw is None and not self.warnings
