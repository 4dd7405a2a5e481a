"""Coinbase Advanced Trade: GET /api/v3/brokerage/key_permissions (docs/facts/exchanges.md).

Quirks: current (CDP) keys are EC/Ed25519 private keys signing JWTs, not HMAC; they
are refused before any request (`non_hmac_key`) with ccxt's own test for them (key name
`organizations/...`, PEM secret, 88-character or `=`-terminated base64 secret). Legacy
HMAC keys are inspected: `can_view`, `can_trade`, `can_transfer`; no IP facts exist.
ccxt files upper-case RESOURCE_EXHAUSTED as plain ExchangeError.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import Adapter, Credentials, require_dict
from broker.exchanges.errors import reason
from broker.reasons import Inspection, Permissions, Reason, ReasonCode


class CoinbaseAdapter(Adapter):
    id = "coinbase"
    error_codes = {
        "RESOURCE_EXHAUSTED": ReasonCode.RATE_LIMITED,
        "resource_exhausted": ReasonCode.RATE_LIMITED,
        "rate_limit_exceeded": ReasonCode.RATE_LIMITED,
        "PERMISSION_DENIED": ReasonCode.READ_DISABLED,
        "authentication_error": ReasonCode.INVALID_CREDENTIALS,
        "invalid_token": ReasonCode.INVALID_CREDENTIALS,
        "expired_token": ReasonCode.INVALID_CREDENTIALS,
        "revoked_token": ReasonCode.INVALID_CREDENTIALS,
        "UNAUTHENTICATED": ReasonCode.INVALID_CREDENTIALS,
    }

    def error_code(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        error = body.get("error")
        if isinstance(error, str):
            return error
        if isinstance(body.get("errors"), list) and body["errors"]:
            first = body["errors"][0]
            if isinstance(first, dict) and first.get("id") is not None:
                return str(first["id"])
        return None

    def precheck(self, credentials: Credentials) -> Reason | None:
        secret = credentials.secret
        if (
            "organizations/" in credentials.api_key
            or secret.startswith("-----BEGIN")
            or len(secret) == 88
            or secret.endswith("=")
        ):
            return reason(
                ReasonCode.NON_HMAC_KEY,
                self.id,
                "this is a CDP key (EC/Ed25519, signs JWTs); only HMAC keys are accepted",
            )
        return super().precheck(credentials)

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.v3_private_get_brokerage_key_permissions())


def parse(answer: Any) -> Inspection:
    data = require_dict(answer, "key_permissions")
    transfer = data.get("can_transfer") is True
    return Inspection(
        exchange="coinbase",
        permissions=Permissions(
            read=data.get("can_view") is True,
            spot_trade=data.get("can_trade") is True,
            withdraw=transfer,  # "transfer" is Coinbase's word for moving funds out
            transfer=transfer,
        ),
        ip_restricted=None,  # Coinbase does not report an IP allowlist
        ip_whitelist=None,
    )
