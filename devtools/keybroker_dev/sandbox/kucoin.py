"""KuCoin: `GET /api/v1/user/api-key`.

Follows docs/facts/exchanges.md § KuCoin and the official docs it cites:
https://www.kucoin.com/docs-new/authentication (headers `KC-API-KEY`, `KC-API-SIGN` =
base64 HMAC-SHA256 of timestamp + METHOD + endpoint(+?query) + body, `KC-API-TIMESTAMP` in
ms within 5 s of server time, `KC-API-PASSPHRASE`: plain for key version 1, and
base64 HMAC-SHA256(secret, passphrase) when `KC-API-KEY-VERSION` is 2 or 3),
https://www.kucoin.com/docs-new/rest/account-info/account-funding/get-apikey-info
(response fields; the whitelist comes back masked as `203.**.154`) and
https://www.kucoin.com/docs-new/errors (400001-400007, 429000, 500000).

Key versions: a version 2 or 3 key must send the encrypted passphrase (a plain one is
refused with 400004); a version 1 key may send either, as the header version says. ccxt
always sends `KC-API-KEY-VERSION: 2`, which KuCoin also accepts for version 3 keys.
"""

from __future__ import annotations

import ipaddress

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
    require,
    verify,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 5_000
_MISSING = (
    "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE is missing"
    " in your request header."
)

_ERRORS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.MISSING_CREDENTIALS: (401, "400001", _MISSING),
    Refusal.BAD_TIMESTAMP: (
        401,
        "400002",
        "KC-API-TIMESTAMP Invalid -- Time differs from server time by more than 5 seconds",
    ),
    Refusal.UNKNOWN_KEY: (401, "400003", "KC-API-KEY not exists"),
    Refusal.KEY_EXPIRED: (401, "400003", "KC-API-KEY not exists"),
    Refusal.BAD_PASSPHRASE: (401, "400004", "KC-API-PASSPHRASE error"),
    Refusal.BAD_SIGNATURE: (401, "400005", "Signature error -- Please check your signature"),
    Refusal.IP_REFUSED: (401, "400006", "The IP address is not in the API whitelist"),
    Refusal.NO_PERMISSION: (
        401,
        "400007",
        "Access Denied -- Your API key does not have sufficient permissions to access the URI",
    ),
    Refusal.RATE_LIMITED: (429, "429000", "Too Many Requests"),
    Refusal.UNAVAILABLE: (503, "500000", "Internal Server Error"),
    Refusal.NOT_FOUND: (404, "404000", "Url Not Found"),
}


def mask_ip(ip: str) -> str:
    """KuCoin shows whitelisted IPv4 addresses as `203.**.154` (first and last octet)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        octets = str(address).split(".")
        return f"{octets[0]}.**.{octets[3]}"
    groups = address.exploded.split(":")
    return f"{groups[0]}:**:{groups[-1]}"


class Kucoin(ExchangeSim):
    name = "kucoin"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("KC-API-KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        headers = request.headers
        for name in ("KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE"):
            require(headers.get(name))
        stamp_text = headers["KC-API-TIMESTAMP"]
        check_window(request, parse_int(stamp_text), behind_ms=WINDOW_MS, ahead_ms=WINDOW_MS)
        key = self.known_key(state, headers["KC-API-KEY"])
        payload = stamp_text + request.method + request.target + request.text
        verify(hmac_b64(key.secret, payload), headers["KC-API-SIGN"])
        header_version = headers.get("KC-API-KEY-VERSION", "1")
        if header_version in ("2", "3"):
            expected = hmac_b64(key.secret, key.passphrase or "")
        elif key.key_version == 1:
            expected = key.passphrase or ""
        else:
            raise Refused(Refusal.BAD_PASSPHRASE)
        verify(expected, headers["KC-API-PASSPHRASE"], Refusal.BAD_PASSPHRASE)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        status, code, msg = _ERRORS[refusal]
        return Reply.json({"code": code, "msg": msg}, status)

    def api_key_info(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        rights = [
            ("General", key.read),
            ("Spot", key.spot_trade),
            ("Margin", key.margin),
            ("Futures", key.futures),
            ("InnerTransfer", key.transfer),  # FlexTransfer between own accounts
            ("Transfer", key.withdraw),  # funds out, withdrawals included
        ]
        data = {
            "remark": key.label,
            "apiKey": key.api_key,
            "apiVersion": key.key_version,
            "permission": ",".join(name for name, granted in rights if granted),
            "ipWhitelist": ",".join(mask_ip(ip) for ip in key.ip_whitelist or ()),
            "createdAt": ms(key.created_at),
            "uid": key.uid,
            "isMaster": True,
        }
        return Reply.json({"code": "200000", "data": data})

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {("GET", "/api/v1/user/api-key"): Endpoint(self.api_key_info)}
