"""HTX (Huobi): GET /v2/user/uid, then GET /v2/user/api-key?uid=..&accessKey=..
(docs/facts/exchanges.md, HTX): the only exchange that needs two signed requests.

Quirks: v2 errors such as `{"code": 1002, "message": "unauthorized"}` come back from
ccxt as data, not exceptions, so each answer's `code` is checked here; v1-style errors
carry `err-code`. `validDays` -1 is "permanent"; keys without bound IPs expire after
90 days; `trade` covers orders and transfers between own accounts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    own_entry,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import unexpected_shape
from broker.reasons import Inspection, Permissions, ReasonCode


class HtxAdapter(Adapter):
    id = "htx"
    requests_per_check = 2
    error_codes = {
        "1002": ReasonCode.INVALID_CREDENTIALS,
        "1003": ReasonCode.INVALID_CREDENTIALS,
        "403": ReasonCode.INVALID_CREDENTIALS,
        "api-signature-not-valid": ReasonCode.INVALID_CREDENTIALS,
        "login-required": ReasonCode.INVALID_CREDENTIALS,
        "api-not-support-temp-addr": ReasonCode.IP_NOT_ALLOWED,
        "api-signature-not-valid:ip": ReasonCode.IP_NOT_ALLOWED,
        "base-request-exceed-frequency-limit": ReasonCode.RATE_LIMITED,
        "rate-too-many-requests": ReasonCode.RATE_LIMITED,
        "base-system-error": ReasonCode.EXCHANGE_UNAVAILABLE,
    }

    error_messages = {
        "api-signature-not-valid:ip": "IP not allowed: the key is bound to other IP addresses",
    }

    def error_code(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        for field in ("err-code", "err_code", "code"):
            if body.get(field) is not None:
                code = str(body[field])
                # HTX reuses api-signature-not-valid for "Incorrect IP address [IP地址错误]";
                # only the message tells it apart from a bad key or signature.
                message = str(body.get("err-msg") or body.get("err_msg") or "")
                if code == "api-signature-not-valid" and "IP" in message:
                    return f"{code}:ip"
                return code
        return None

    def _checked(self, answer: Any, what: str) -> dict[str, Any]:
        body = require_dict(answer, what)
        if body.get("status") == "error" or (
            body.get("code") is not None and str(body.get("code")) != "200"
        ):
            known = self.known_error(self.error_code(body))
            raise InspectionFailed(known if known is not None else unexpected_shape(f"{what} code"))
        return body

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        uid_answer = self._checked(await exchange.v2private_get_user_uid(), "user/uid")
        uid = uid_answer.get("data")
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise InspectionFailed(unexpected_shape("user/uid data"))
        answer = await exchange.v2private_get_user_api_key(
            {"uid": uid, "accessKey": credentials.api_key}
        )
        return parse(self._checked(answer, "user/api-key"), credentials.api_key)


def parse(body: Any, api_key: str, now: datetime | None = None) -> Inspection:
    entry = own_entry(
        require_dict(body, "user/api-key").get("data"),
        "user/api-key data",
        match="accessKey",
        api_key=api_key,
        exchange="htx",
        detail="the key is missing from its own key list",
    )
    perms = set(split_list(entry.get("permission")))
    restricted, ips = whitelist(entry.get("ipAddresses"))
    now = now or datetime.now(UTC)
    expires_at = None
    if entry.get("status") == "expired":
        expires_at = now
    else:
        days = entry.get("validDays")
        if isinstance(days, int) and not isinstance(days, bool) and days >= 0:
            if days > 36_500:  # a century: not a documented value
                raise InspectionFailed(unexpected_shape("user/api-key validDays"))
            expires_at = now + timedelta(days=days)
    return Inspection(
        exchange="htx",
        permissions=Permissions(
            read="readOnly" in perms,
            spot_trade="trade" in perms,
            withdraw="withdraw" in perms,
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
        expires_at=expires_at,
    )
