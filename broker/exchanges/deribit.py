"""Deribit: GET /api/v2/private/list_api_keys (reference/exchanges.md, Deribit).

One signed request lists the account's keys; ours is the entry whose `client_id` is
our api key. Rights come from its `max_scope` (`trade:read_write wallet:none ...`):
Deribit's `trade` scope covers every instrument, futures and options included, so a
trading key has futures rights; `wallet:read_write` allows withdrawals and transfers.
A key without `account:read` cannot list keys (13021 forbidden): unverifiable.
Errors are JSON-RPC `{"error": {"code": ...}}`.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import reason, unexpected_shape
from broker.reasons import Inspection, Permissions, ReasonCode


class DeribitAdapter(Adapter):
    id = "deribit"
    error_codes = {
        "13004": ReasonCode.INVALID_CREDENTIALS,
        "13009": ReasonCode.INVALID_CREDENTIALS,
        "10000": ReasonCode.INVALID_CREDENTIALS,
        "13003": ReasonCode.INVALID_CREDENTIALS,
        "13021": ReasonCode.UNVERIFIABLE,
        "13011": ReasonCode.UNVERIFIABLE,
        "10028": ReasonCode.RATE_LIMITED,
        "10040": ReasonCode.EXCHANGE_UNAVAILABLE,
        "10041": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "13003": "the exchange asks for two-factor authentication to list keys",
        "13021": "forbidden: the key lacks the account:read scope needed to read its "
        "rights, or the broker's IP is not whitelisted (Deribit does not say which)",
        "13011": "the key lacks the account:read scope, so its rights cannot be read",
    }

    def error_code(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            return None if code is None else str(code)
        return None

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_get_list_api_keys(), credentials.api_key)


def scopes(text: str) -> dict[str, str]:
    """`"account:read trade:read_write"` -> {"account": "read", "trade": "read_write"}."""
    out: dict[str, str] = {}
    for part in text.split():
        name, _, level = part.partition(":")
        out[name] = level
    return out


def parse(answer: Any, api_key: str) -> Inspection:
    body = require_dict(answer, "list_api_keys")
    keys = body.get("result")
    if not isinstance(keys, list):
        raise InspectionFailed(unexpected_shape("list_api_keys result"))
    own = [k for k in keys if isinstance(k, dict) and k.get("client_id") == api_key]
    if len(own) != 1:
        raise InspectionFailed(
            reason(ReasonCode.UNVERIFIABLE, "deribit", "the key is missing from its key list")
        )
    entry = own[0]
    if entry.get("enabled") is False:
        raise InspectionFailed(reason(ReasonCode.INVALID_CREDENTIALS, "deribit", "key disabled"))
    scope = scopes(str(entry.get("max_scope", "")))
    readable = {"read", "read_write"}
    trade = scope.get("trade") == "read_write"
    wallet = scope.get("wallet") == "read_write"
    restricted, ips = whitelist(split_list(entry.get("ip_whitelist")))
    return Inspection(
        exchange="deribit",
        permissions=Permissions(
            read=any(scope.get(name) in readable for name in ("account", "trade", "wallet")),
            spot_trade=trade,
            futures=trade,
            withdraw=wallet,
            transfer=wallet,
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
