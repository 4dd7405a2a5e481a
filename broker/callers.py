"""Who is calling: the caller's Vault token resolved to its policies.

`Authorization: Bearer <token>` is looked up with `POST auth/token/lookup` using the
broker's own token (docs/contracts.md §3). Answers are cached briefly (`caller_cache_ttl`,
never beyond the token's own expiry) in a bounded map keyed by a hash of the token, so
a burst of requests costs one lookup, and a revoked token stops working within the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import hvac.exceptions as hvac_errors

from broker.ids import ACCOUNT_PATTERN
from broker.names import ACCOUNT_META_KEY
from broker.vault_session import VaultRefused, VaultSession

# A token whose metadata names an account that could not be one: bound, but to no account.
UNMATCHABLE_ACCOUNT = "/"


class UnknownCaller(Exception):
    """The token is missing, malformed, expired or unknown to Vault (401)."""


@dataclass(frozen=True)
class Caller:
    policies: frozenset[str]
    display_name: str
    token_hash: str  # sha256 of the token: a cache key, never logged (audit uses an HMAC)
    # The account the token is bound to (its `meta.account`), None when it spans accounts.
    account: str | None = None

    def has(self, policy: str) -> bool:
        return policy in self.policies


class CallerDirectory:
    def __init__(self, session: VaultSession, *, ttl: float, max_size: int = 10_000) -> None:
        self._session = session
        self._ttl = ttl
        self._max_size = max_size
        self._cache: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Future[Caller]] = {}

    async def resolve(self, token: str) -> Caller:
        if not token or len(token) > 512 or not token.isascii() or not token.isprintable():
            raise UnknownCaller("malformed token")
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._get(key)
        if cached is not None:
            return cached
        # Single flight: a burst of requests with one new token costs one lookup.
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(token, key))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _lookup(self, token: str, key: str) -> Caller:
        try:
            response = await self._session.request(
                "lookup_caller", "POST", "/v1/auth/token/lookup", json={"token": token}
            )
            data = response["data"] if response else None
        except (hvac_errors.InvalidRequest, hvac_errors.InvalidPath):
            data = None  # malformed token
        except VaultRefused as exc:
            # Vault answers 403 "bad token" for an unknown token; anything else is about
            # the broker's own token and stays a VaultRefused (503).
            if "bad token" not in exc.vault_message:
                raise
            data = None
        if data is None:
            raise UnknownCaller("unknown token")
        if data.get("num_uses"):
            # A lookup by the broker does not spend the caller's uses, so honouring a
            # use-limited token would let it work any number of times: refuse it.
            raise UnknownCaller("use-limited tokens are not accepted")
        policies = frozenset(
            [*(data.get("policies") or []), *(data.get("identity_policies") or [])]
        )
        caller = Caller(
            policies=policies,
            display_name=str(data.get("display_name") or ""),
            token_hash=key,
            account=_bound_account(data.get("meta")),
        )
        ttl = self._ttl
        if data.get("expire_time"):  # tokens without expiry (root) report ttl 0 and no time
            ttl = min(ttl, float(data.get("ttl") or 0))
        self._put(key, caller, ttl)
        return caller

    def _get(self, key: str) -> Caller | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires, caller = entry
            if time.monotonic() >= expires:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return caller

    def _put(self, key: str, caller: Caller, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, caller)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_size:
                self._cache.popitem(last=False)

    def __len__(self) -> int:
        return len(self._cache)


def _bound_account(meta: object) -> str | None:
    """The account in the token's metadata (docs/key-health.md "Who may report")."""
    if not isinstance(meta, dict) or ACCOUNT_META_KEY not in meta:
        return None
    value = meta[ACCOUNT_META_KEY]
    if isinstance(value, str) and ACCOUNT_PATTERN.fullmatch(value):
        return value
    return UNMATCHABLE_ACCOUNT
