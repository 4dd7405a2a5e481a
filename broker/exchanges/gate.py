"""Gate: GET /api/v4/account/main_keys (docs/facts/exchanges.md, Gate).

One request reads every main-account key with its `perms` and `ip_whitelist`; keys
come back masked (`c5dcfbf1f3a7*****`), so ours is the one whose visible prefix starts
our api key (two matches: ambiguous, not guessed). The docs show a list, the SDK a single
object: both are accepted. `wallet` with `read_only: false` covers transfers and
withdrawals. Errors are `{"label": ...}`; IP_FORBIDDEN is filed by ccxt as a plain
AuthenticationError, REQUEST_EXPIRED as AuthenticationError too.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    require_dict,
    whitelist,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET, reason, unexpected_shape
from broker.reasons import Inspection, Permissions, ReasonCode


class GateAdapter(Adapter):
    id = "gate"
    error_codes = {
        "INVALID_KEY": ReasonCode.INVALID_CREDENTIALS,
        "INVALID_SIGNATURE": ReasonCode.INVALID_CREDENTIALS,
        "INVALID_CREDENTIALS": ReasonCode.INVALID_CREDENTIALS,
        "MISSING_REQUIRED_HEADER": ReasonCode.INVALID_CREDENTIALS,
        "AUTHENTICATION_FAILED": ReasonCode.INVALID_CREDENTIALS,
        "ACCOUNT_LOCKED": ReasonCode.INVALID_CREDENTIALS,
        "IP_FORBIDDEN": ReasonCode.IP_NOT_ALLOWED,
        "FORBIDDEN": ReasonCode.UNVERIFIABLE,
        "TOO_MANY_REQUESTS": ReasonCode.RATE_LIMITED,
        "TOO_FAST": ReasonCode.RATE_LIMITED,
        "REQUEST_EXPIRED": ReasonCode.EXCHANGE_UNAVAILABLE,
        "SERVER_ERROR": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "INVALID_SIGNATURE": WRONG_SECRET,
        "ACCOUNT_LOCKED": "the account is locked",
        "FORBIDDEN": "the key lacks Gate's `account` read permission, so its rights cannot "
        "be read; grant it and submit again",
        "REQUEST_EXPIRED": CLOCK_SKEW,
    }

    def error_code(self, body: Any) -> str | None:
        if isinstance(body, dict) and body.get("label") is not None:
            return str(body["label"])
        return None

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_account_get_main_keys(), credentials.api_key)


def _own_entry(answer: Any, api_key: str) -> dict[str, Any]:
    entries = answer if isinstance(answer, list) else [answer]
    matches = []
    for entry in entries:
        entry = require_dict(entry, "main_keys entry")
        shown = str(entry.get("key", ""))
        prefix = shown.split("*", 1)[0]
        if shown == api_key or (prefix and "*" in shown and api_key.startswith(prefix)):
            matches.append(entry)
    if len(matches) != 1:
        raise InspectionFailed(
            reason(
                ReasonCode.UNVERIFIABLE,
                "gate",
                "the key is not identifiable among the account's keys (Gate masks them)",
            )
        )
    return matches[0]


def parse(answer: Any, api_key: str) -> Inspection:
    entry = _own_entry(answer, api_key)
    state = entry.get("state", 1)
    if state not in (1, "1"):
        raise InspectionFailed(
            reason(ReasonCode.INVALID_CREDENTIALS, "gate", "the key is locked or frozen")
        )
    perms = entry.get("perms")
    if not isinstance(perms, list):
        raise InspectionFailed(unexpected_shape("main_keys perms"))
    granted: set[str] = set()
    writable: set[str] = set()
    for perm in perms:
        perm = require_dict(perm, "main_keys perm")
        name = str(perm.get("name"))
        granted.add(name)
        if perm.get("read_only") is not True:
            writable.add(name)
    restricted, ips = whitelist(entry.get("ip_whitelist"))
    return Inspection(
        exchange="gate",
        permissions=Permissions(
            read=bool(granted),
            spot_trade="spot" in writable,
            margin=bool(writable & {"margin", "loan"}),
            futures=bool(writable & {"futures", "delivery", "options"}),
            withdraw="wallet" in writable,
            transfer="wallet" in writable,
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
