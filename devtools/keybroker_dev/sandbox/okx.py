"""OKX: `GET /api/v5/account/config`.

Follows docs/facts/exchanges.md § OKX and the official docs it cites:
https://www.okx.com/docs-v5/en/#rest-api-authentication-signature (headers `OK-ACCESS-KEY`,
`OK-ACCESS-SIGN` = base64 HMAC-SHA256 of timestamp + METHOD + requestPath(+?query) + body,
`OK-ACCESS-TIMESTAMP` ISO 8601 with milliseconds in UTC, plain `OK-ACCESS-PASSPHRASE`;
requests older than 30 s are refused),
https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-account-configuration (fields
`perm`, `ip`, `label`) and https://www.okx.com/docs-v5/en/#error-code-rest-api (50102,
50103-50107, 50110, 50111, 50112, 50113, 50105, 50011, 50001 with their HTTP statuses).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Refused,
    Reply,
    SandboxRequest,
    check_window,
    hmac_b64,
    require,
    verify,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 30_000

_HEADERS = (
    ("OK-ACCESS-KEY", "50103", 'Request header "OK-ACCESS-KEY" cannot be empty.'),
    ("OK-ACCESS-PASSPHRASE", "50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.'),
    ("OK-ACCESS-SIGN", "50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.'),
    ("OK-ACCESS-TIMESTAMP", "50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.'),
)

_ERRORS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.UNKNOWN_KEY: (401, "50111", "Invalid OK-ACCESS-KEY."),
    Refusal.KEY_EXPIRED: (401, "50111", "Invalid OK-ACCESS-KEY."),
    Refusal.BAD_SIGNATURE: (401, "50113", "Invalid signature."),
    Refusal.BAD_PASSPHRASE: (401, "50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.'),
    Refusal.BAD_TIMESTAMP: (401, "50102", "Timestamp request expired."),
    Refusal.IP_REFUSED: (
        401,
        "50110",
        "Your IP {ip} is not included in your API key's IP whitelist.",
    ),
    Refusal.NO_PERMISSION: (
        200,
        "50120",
        "This API key doesn't have permission to use this function",
    ),
    Refusal.RATE_LIMITED: (
        429,
        "50011",
        "Rate limit reached. Please refer to API documentation and throttle requests accordingly.",
    ),
    Refusal.UNAVAILABLE: (503, "50001", "Service temporarily unavailable. Please try again later."),
    Refusal.NOT_FOUND: (404, "404", "Not Found"),
}


def _parse_iso(value: str) -> int:
    """Milliseconds from OKX's `2020-12-08T09:08:57.715Z`; anything else is refused."""
    try:
        if not value.endswith("Z"):
            raise ValueError(value)
        return int(datetime.fromisoformat(value[:-1] + "+00:00").timestamp() * 1000)
    except ValueError:
        raise Refused(Refusal.MISSING_CREDENTIALS) from None


class Okx(ExchangeSim):
    name = "okx"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("OK-ACCESS-KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        for header, _, _ in _HEADERS:
            require(request.headers.get(header))
        stamp_text = request.headers["OK-ACCESS-TIMESTAMP"]
        stamp = _parse_iso(stamp_text)
        check_window(request, stamp, behind_ms=WINDOW_MS, ahead_ms=WINDOW_MS)
        key = self.known_key(state, request.headers["OK-ACCESS-KEY"])
        verify(
            key.passphrase or "", request.headers["OK-ACCESS-PASSPHRASE"], Refusal.BAD_PASSPHRASE
        )
        payload = stamp_text + request.method + request.target + request.text
        verify(hmac_b64(key.secret, payload), request.headers["OK-ACCESS-SIGN"])
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.MISSING_CREDENTIALS:
            for header, code, msg in _HEADERS:
                if not request.headers.get(header):
                    return Reply.json({"code": code, "msg": msg, "data": []}, 401)
            return Reply.json(
                {"code": "50112", "msg": "Invalid OK-ACCESS-TIMESTAMP.", "data": []}, 401
            )
        status, code, msg = _ERRORS[refusal]
        text = msg.format(ip=request.client_ip)
        return Reply.json({"code": code, "msg": text, "data": []}, status)

    def account_config(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        # One `trade` flag covers spot, margin, futures and transfers on OKX.
        perms = ["read_only"] if key.read else []
        if key.spot_trade or key.margin or key.futures or key.transfer:
            perms.append("trade")
        if key.withdraw:
            perms.append("withdraw")
        config: dict[str, Any] = {
            "uid": str(key.uid),
            "mainUid": str(key.uid),
            # Spot mode (1) unless the key may reach margin or futures, which on OKX come
            # with the account mode (2: spot and futures), not with the key.
            "acctLv": "2" if key.margin or key.futures else "1",
            "label": key.label,
            "ip": ",".join(key.ip_whitelist or ()),
            "perm": ",".join(perms),
            "opAuth": "1",
            "kycLv": "2",
            "posMode": "net_mode",
            "autoLoan": False,
            "ctIsoMode": "automatic",
            "mgnIsoMode": "automatic",
            "greeksType": "PA",
            "level": "Lv1",
            "levelTmp": "",
            "liquidationGear": "-1",
            "spotOffsetType": "",
            "roleType": "0",
            "traderInsts": [],
            "spotRoleType": "0",
            "spotTraderInsts": [],
            "enableSpotBorrow": False,
            "spotBorrowAutoRepay": False,
            "type": "0",
        }
        return Reply.json({"code": "0", "msg": "", "data": [config]})

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {("GET", "/api/v5/account/config"): Endpoint(self.account_config)}
