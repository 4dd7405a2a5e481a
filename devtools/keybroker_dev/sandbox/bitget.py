"""Bitget: `GET /api/v2/spot/account/info`.

Follows docs/facts/exchanges.md § Bitget and the official docs it cites:
https://www.bitget.com/api-doc/common/signature (headers `ACCESS-KEY`, `ACCESS-SIGN` =
base64 HMAC-SHA256 of timestamp + METHOD + requestPath(+?query, not URL-encoded) + body,
`ACCESS-TIMESTAMP` in ms, accepted within 30 s of server time, plain `ACCESS-PASSPHRASE`),
https://www.bitget.com/api-doc/spot/account/Get-Account-Info (fields `authorities`, `ips`)
and https://www.bitget.com/api-doc/common/error-code/restapi (40001-40018, 40037, 429).
"""

from __future__ import annotations

from urllib.parse import unquote

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Refused,
    Reply,
    SandboxRequest,
    check_window,
    hmac_b64,
    ms,
    parse_int,
    verify,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 30_000

# Missing headers, in the order Bitget checks them, with their own codes.
_REQUIRED = (
    ("ACCESS-KEY", "40001", "ACCESS_KEY cannot be empty"),
    ("ACCESS-SIGN", "40003", "Signature cannot be empty"),
    ("ACCESS-TIMESTAMP", "40005", "Invalid ACCESS_TIMESTAMP"),
    ("ACCESS-PASSPHRASE", "40011", "ACCESS_PASSPHRASE cannot be empty"),
)

_ERRORS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.UNKNOWN_KEY: (400, "40006", "Invalid ACCESS_KEY"),
    Refusal.KEY_EXPIRED: (400, "40037", "Apikey does not exist"),
    Refusal.BAD_SIGNATURE: (400, "40009", "sign signature error"),
    Refusal.BAD_PASSPHRASE: (400, "40012", "apikey/password is incorrect"),
    Refusal.BAD_TIMESTAMP: (400, "40008", "Request timestamp expired"),
    Refusal.IP_REFUSED: (400, "40018", "Invalid IP"),
    Refusal.NO_PERMISSION: (400, "40014", "Incorrect permissions"),
    Refusal.RATE_LIMITED: (429, "429", "Too Many Requests"),
    Refusal.NOT_FOUND: (404, "40404", "Request URL NOT FOUND"),
}


class Bitget(ExchangeSim):
    name = "bitget"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("ACCESS-KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        headers = request.headers
        for header, _, _ in _REQUIRED:
            if not headers.get(header):
                raise Refused(Refusal.MISSING_CREDENTIALS)
        stamp_text = headers["ACCESS-TIMESTAMP"]
        check_window(request, parse_int(stamp_text), behind_ms=WINDOW_MS, ahead_ms=WINDOW_MS)
        key = self.known_key(state, headers["ACCESS-KEY"])
        verify(key.passphrase or "", headers["ACCESS-PASSPHRASE"], Refusal.BAD_PASSPHRASE)
        target = request.path + (f"?{unquote(request.raw_query)}" if request.raw_query else "")
        payload = stamp_text + request.method + target + request.text
        verify(hmac_b64(key.secret, payload), headers["ACCESS-SIGN"])
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("Service Unavailable", 503)
        if refusal is Refusal.MISSING_CREDENTIALS:
            missing = [(c, m) for h, c, m in _REQUIRED if not request.headers.get(h)]
            code, msg = missing[0] if missing else ("40005", "Invalid ACCESS_TIMESTAMP")
            status = 400
        else:
            status, code, msg = _ERRORS[refusal]
        body = {"code": code, "msg": msg, "requestTime": request.now_ms, "data": None}
        return Reply.json(body, status)

    def account_info(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        authorities: list[str] = []
        if key.read:
            authorities += ["stor", "coor", "cpor", "smor", "wtor"]
        if key.spot_trade:
            authorities.append("stow")
        if key.futures:
            authorities += ["coow", "cpow"]
        if key.margin:
            authorities.append("smow")
        if key.transfer:
            authorities.append("wtow")
        if key.withdraw:
            authorities.append("wwow")
        data = {
            "userId": str(key.uid),
            "inviterId": "0",
            "ips": ",".join(key.ip_whitelist or ()),
            "authorities": authorities,
            "parentId": key.uid,
            "traderType": "",
            "channelCode": "",
            "channel": "",
            "regisTime": str(ms(key.created_at)),
        }
        body = {"code": "00000", "msg": "success", "requestTime": request.now_ms, "data": data}
        return Reply.json(body)

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        # "SPOT read or SPOT read/write permission needed".
        return {("GET", "/api/v2/spot/account/info"): Endpoint(self.account_info)}
