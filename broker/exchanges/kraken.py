"""Kraken (spot): POST /0/private/GetApiKeyInfo (docs/facts/exchanges.md, Kraken).

Quirks: errors are a list of strings (`["EAPI:Invalid key"]`) and ccxt files
`EAPI:Invalid signature` as a plain ExchangeError; the secret must be base64 (ccxt
decodes it before signing); permission names come in two spellings (`withdraw-funds`
in GetApiKeyInfo, `funds_withdraw` in the key model), compared as word sets; spot keys
carry no futures rights (Kraken Futures uses separate keys); `validUntil` "0" = never.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    from_timestamp,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import WRONG_SECRET, reason, unexpected_shape
from broker.reasons import Inspection, Permissions, Reason, ReasonCode


def _words(name: str) -> frozenset[str]:
    return frozenset(name.replace("_", "-").split("-"))


class KrakenAdapter(Adapter):
    id = "kraken"
    error_codes = {
        "EAPI:Invalid key": ReasonCode.INVALID_CREDENTIALS,
        "EAPI:Invalid signature": ReasonCode.INVALID_CREDENTIALS,
        "EAPI:Bad request": ReasonCode.INVALID_CREDENTIALS,
        # GetApiKeyInfo needs no permission ("API Key Permissions Required: None"), so a
        # denial there is about where the request came from.
        "EGeneral:Permission denied": ReasonCode.IP_NOT_ALLOWED,
        "EAPI:Rate limit exceeded": ReasonCode.RATE_LIMITED,
        "EGeneral:Temporary lockout": ReasonCode.RATE_LIMITED,
        "EAPI:Invalid nonce": ReasonCode.EXCHANGE_UNAVAILABLE,
        "EService:Unavailable": ReasonCode.EXCHANGE_UNAVAILABLE,
        "EService:Busy": ReasonCode.EXCHANGE_UNAVAILABLE,
        "EGeneral:Internal error": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "EAPI:Invalid signature": WRONG_SECRET,
        "EGeneral:Permission denied": "IP not allowed: Kraken denied a request that needs no "
        "permission (the key's IP allowlist, most likely)",
        "EAPI:Invalid nonce": "the exchange refused the request nonce; try again",
    }

    def error_code(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), list) and body["error"]:
            first = str(body["error"][0])
            # "EGeneral:Permission denied:extra detail" -> the documented prefix
            return ":".join(first.split(":")[:2])
        return None

    def precheck(self, credentials: Credentials) -> Reason | None:
        refused = super().precheck(credentials)
        if refused is not None:
            return refused
        try:
            base64.b64decode(credentials.secret, validate=True)
        except (binascii.Error, ValueError):
            return reason(
                ReasonCode.INVALID_CREDENTIALS, self.id, "Invalid key: the secret is not base64"
            )
        return None

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_post_getapikeyinfo())


def parse(answer: Any) -> Inspection:
    body = require_dict(answer, "GetApiKeyInfo")
    if body.get("error"):
        raise InspectionFailed(unexpected_shape("GetApiKeyInfo error"))
    result = require_dict(body.get("result"), "GetApiKeyInfo result")
    words = {_words(name) for name in split_list(result.get("permissions"))}
    restricted, ips = whitelist(result.get("ipAllowlist"))
    expires_at = None
    valid_until = str(result.get("validUntil", "0") or "0")
    try:
        seconds = int(valid_until)
    except ValueError:
        raise InspectionFailed(unexpected_shape("GetApiKeyInfo validUntil")) from None
    if seconds > 0:
        expires_at = from_timestamp(seconds, "GetApiKeyInfo validUntil")
    return Inspection(
        exchange="kraken",
        permissions=Permissions(
            read=any("query" in w for w in words),  # query-funds, query-open-trades, ...
            spot_trade=any(w & {"modify", "close", "cancel"} and "trades" in w for w in words),
            withdraw=any({"withdraw", "funds"} <= w for w in words),
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
        expires_at=expires_at,
    )
