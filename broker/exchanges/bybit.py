"""Bybit: GET /v5/user/query-api (docs/facts/exchanges.md, Bybit).

Quirks: `readOnly` 1 overrides any write right listed; futures rights sit under
`ContractTrade`, `Derivatives` and `Options`; withdraw and transfers under `Wallet`;
`ips` `["*"]` means unbound; `expiredAt` is set only for keys without bound IPs.
HTTP 403 is Bybit's IP rate limit (ccxt maps it to RateLimitExceeded).

Key kinds: system-generated HMAC keys, and self-generated RSA keys whose secret is the
PEM private key: ccxt's bybit `sign()` signs with `rsa()` (PKCS#1 v1.5 SHA-256) whenever
the secret holds `PRIVATE KEY`, so `precheck` refuses any other PEM without a request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broker.exchanges.base import (
    UNREADABLE_PEM,
    Adapter,
    Credentials,
    InspectionFailed,
    load_private_pem,
    payload,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET, reason, unexpected_shape
from broker.reasons import Inspection, Permissions, Reason, ReasonCode


class BybitAdapter(Adapter):
    id = "bybit"
    error_codes = {
        "10003": ReasonCode.INVALID_CREDENTIALS,
        "10004": ReasonCode.INVALID_CREDENTIALS,
        "33004": ReasonCode.KEY_EXPIRED,
        "10010": ReasonCode.IP_NOT_ALLOWED,
        "10005": ReasonCode.READ_DISABLED,
        "10006": ReasonCode.RATE_LIMITED,
        "10018": ReasonCode.RATE_LIMITED,
        "10002": ReasonCode.EXCHANGE_UNAVAILABLE,
        "10016": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "10004": WRONG_SECRET,
        "10002": CLOCK_SKEW,
    }

    def error_code(self, body: Any) -> str | None:
        if isinstance(body, dict) and body.get("retCode") is not None:
            return str(body["retCode"])
        return None

    def precheck(self, credentials: Credentials) -> Reason | None:
        if "PRIVATE KEY" not in credentials.secret:
            return super().precheck(credentials)
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = load_private_pem(credentials.secret)
        if isinstance(private, rsa.RSAPrivateKey):
            return None
        problem = UNREADABLE_PEM if private is None else "Bybit API keys are HMAC or RSA"
        return reason(ReasonCode.INVALID_CREDENTIALS, self.id, problem)

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_get_v5_user_query_api())


def _names(groups: dict[str, Any], group: str) -> set[str]:
    return set(split_list(groups.get(group)))


def parse(answer: Any) -> Inspection:
    body = payload(answer, "query-api", ok="0", code="retCode", data="result")
    result = require_dict(body, "query-api result")
    groups = require_dict(result.get("permissions") or {}, "query-api permissions")
    writable = str(result.get("readOnly")) == "0"
    wallet = _names(groups, "Wallet")
    futures = bool(
        _names(groups, "ContractTrade") | _names(groups, "Derivatives") | _names(groups, "Options")
    )
    restricted, ips = whitelist(result.get("ips"))
    expires_at = None
    expired_text = result.get("expiredAt")
    if isinstance(expired_text, str) and expired_text:
        try:
            expires_at = datetime.fromisoformat(expired_text.replace("Z", "+00:00"))
        except ValueError:
            raise InspectionFailed(unexpected_shape("query-api expiredAt")) from None
    return Inspection(
        exchange="bybit",
        permissions=Permissions(
            read=True,  # every Bybit key reads; readOnly says whether it also writes
            spot_trade=writable and "SpotTrade" in _names(groups, "Spot"),
            margin=False,  # not a separate right on Bybit (spot margin rides on SpotTrade)
            futures=writable and futures,
            withdraw=writable and "Withdraw" in wallet,
            transfer=writable and bool(wallet & {"AccountTransfer", "SubMemberTransfer"}),
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
        expires_at=expires_at,
    )
