"""Response-wrapping tokens: single-use tokens that hold one response until unwrapped.

DOC concepts/response-wrapping.mdx and api-docs/system/wrapping-*.mdx (docs/facts/vault.md
§4.4): the wrapped response is replaced by `wrap_info`; `sys/wrapping/unwrap` returns
the original response once; `sys/wrapping/lookup` shows creation time, path and TTL;
an expired or used wrapping token is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keybroker_dev.devvault import ids
from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.errors import bad_request


@dataclass
class WrappedResponse:
    token: str = field(repr=False)
    accessor: str
    creation_time: float
    ttl: float
    creation_path: str
    body: dict[str, Any] = field(repr=False)  # the original response body (envelope)
    wrapped_accessor: str = ""


class WrappingStore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._by_token: dict[str, WrappedResponse] = {}

    def wrap(
        self, body: dict[str, Any], ttl: float, path: str, wrapped_accessor: str = ""
    ) -> dict[str, Any]:
        """Store `body`; return the `wrap_info` block (docs/facts/vault.md §4.1)."""
        entry = WrappedResponse(
            token=ids.service_token(),
            accessor=ids.accessor(),
            creation_time=self.clock.now(),
            ttl=ttl,
            creation_path=path,
            body=body,
            wrapped_accessor=wrapped_accessor,
        )
        self._by_token[entry.token] = entry
        info: dict[str, Any] = {
            "token": entry.token,
            "accessor": entry.accessor,
            "ttl": int(ttl),
            "creation_time": rfc3339(entry.creation_time),
            "creation_path": path,
        }
        if wrapped_accessor:
            info["wrapped_accessor"] = wrapped_accessor
        return info

    def get(self, token: str) -> WrappedResponse | None:
        entry = self._by_token.get(token)
        if entry is None:
            return None
        if self.clock.now() >= entry.creation_time + entry.ttl:
            del self._by_token[token]
            return None
        return entry

    def unwrap(self, token: str) -> dict[str, Any]:
        entry = self.get(token)
        if entry is None:
            raise bad_request("wrapping token is not valid or does not exist")
        del self._by_token[token]  # single use
        return entry.body

    def lookup(self, token: str) -> dict[str, Any]:
        entry = self.get(token)
        if entry is None:
            raise bad_request("wrapping token is not valid or does not exist")
        return {
            "creation_path": entry.creation_path,
            "creation_time": rfc3339(entry.creation_time),
            "creation_ttl": int(entry.ttl),
        }
