"""Deribit: GET /api/v2/private/list_api_keys (docs/facts/exchanges.md, Deribit).

One signed request lists the account's keys; ours is the entry whose `client_id` is
our api key. Rights come from its `max_scope` (`trade:read_write wallet:none ...`):
Deribit's `trade` scope covers every instrument, futures and options included, so a
trading key has futures rights; `wallet:read_write` allows withdrawals and transfers.
Errors are JSON-RPC `{"error": {"code": ...}}`.

13021 "forbidden" means the key lacks `account:read` or the caller's IP is not allowed.
Only then a second, different request follows: `public/auth` with a `client_signature`
grant (no secret sent), whose `scope` is the key's granted scope. If that is refused
too, the IP was the problem (auth needs no scope); if it succeeds, the rights come
from its scope and the IP whitelist stays unknown.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    error_body,
    own_entry,
    require_dict,
    whitelist,
)
from broker.exchanges.errors import reason
from broker.reasons import Inspection, Permissions, ReasonCode

# Appended to a futures refusal: on Deribit it cannot be cleared at the exchange.
HINTS = {
    ReasonCode.FUTURES_ENABLED: "Deribit's trade scope covers futures and options, so every "
    "Deribit key that can trade has futures rights; KEYBROKER_ALLOW_FUTURES=deribit "
    "accepts them"
}


class DeribitAdapter(Adapter):
    id = "deribit"
    error_codes = {
        "13004": ReasonCode.INVALID_CREDENTIALS,
        "13009": ReasonCode.INVALID_CREDENTIALS,
        "10000": ReasonCode.INVALID_CREDENTIALS,
        "13003": ReasonCode.INVALID_CREDENTIALS,
        "13021": ReasonCode.INVALID_CREDENTIALS,
        "13011": ReasonCode.UNVERIFIABLE,
        "10028": ReasonCode.RATE_LIMITED,
        "10040": ReasonCode.EXCHANGE_UNAVAILABLE,
        "10041": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "13003": "the exchange asks for two-factor authentication to list keys",
        "13021": "forbidden: the key lacks the scope or the broker's IP is not allowed",
        "13011": "the key lacks the account:read scope, so its rights cannot be read",
    }

    def error_code(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            return None if code is None else str(code)
        return None

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        try:
            answer = await exchange.private_get_list_api_keys()
        except Exception as exc:
            if self.error_code(error_body(exc)) != "13021":
                raise
            return await self._inspect_by_auth(exchange, credentials)
        return parse(answer, credentials.api_key)

    async def _inspect_by_auth(self, exchange: Any, credentials: Credentials) -> Inspection:
        stamp = str(int(time.time() * 1000))
        nonce = secrets.token_hex(8)
        payload = f"{stamp}\n{nonce}\n"  # Deribit: timestamp \n nonce \n data ("")
        # Signed by the ccxt object's own hmac with the secret it holds, as its sign()
        # does: a consumer's Transit-signing object holds only a stand-in and asks Vault
        # (broker/signing.py), so `credentials.secret` may be empty. A worker thread, since
        # that Vault call blocks.
        signature = await asyncio.to_thread(
            exchange.hmac, payload.encode(), (exchange.secret or "").encode(), hashlib.sha256
        )
        try:
            answer = await exchange.public_get_auth(
                {
                    "grant_type": "client_signature",
                    "client_id": credentials.api_key,
                    "timestamp": stamp,
                    "nonce": nonce,
                    "data": "",
                    "signature": signature,
                }
            )
        except Exception as exc:
            if self.error_code(error_body(exc)) == "13021":
                raise InspectionFailed(
                    reason(
                        ReasonCode.IP_NOT_ALLOWED,
                        self.id,
                        "IP not allowed: Deribit refused even authentication from the "
                        "broker's address",
                    )
                ) from None
            raise
        return parse_auth(answer)


def scopes(text: str) -> dict[str, str]:
    """`"account:read trade:read_write"` -> {"account": "read", "trade": "read_write"}."""
    out: dict[str, str] = {}
    for part in text.split():
        name, _, level = part.partition(":")
        out[name] = level
    return out


def _permissions(scope: dict[str, str]) -> Permissions:
    readable = {"read", "read_write"}
    trade = scope.get("trade") == "read_write"
    wallet = scope.get("wallet") == "read_write"
    return Permissions(
        read=scope.get("account") in readable,  # balances and positions need account:read
        spot_trade=trade,
        futures=trade,
        withdraw=wallet,
        transfer=wallet,
    )


def parse_auth(answer: Any) -> Inspection:
    body = require_dict(answer, "public/auth")
    result = require_dict(body.get("result"), "public/auth result")
    return Inspection(
        exchange="deribit",
        permissions=_permissions(scopes(str(result.get("scope", "")))),
        hints=HINTS,
        ip_restricted=None,  # public/auth does not tell
        ip_whitelist=None,
    )


def parse(answer: Any, api_key: str) -> Inspection:
    entry = own_entry(
        require_dict(answer, "list_api_keys").get("result"),
        "list_api_keys result",
        match="client_id",
        api_key=api_key,
        exchange="deribit",
        detail="the key is missing from its key list",
    )
    if entry.get("enabled") is False:
        raise InspectionFailed(reason(ReasonCode.INVALID_CREDENTIALS, "deribit", "key disabled"))
    restricted, ips = whitelist(entry.get("ip_whitelist"))
    return Inspection(
        exchange="deribit",
        permissions=_permissions(scopes(str(entry.get("max_scope", "")))),
        hints=HINTS,
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
