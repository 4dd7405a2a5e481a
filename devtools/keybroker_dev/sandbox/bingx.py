"""BingX: `GET /openApi/v1/account/apiPermissions` (and `.../apiRestrictions`).

Follows docs/facts/exchanges.md § BingX and the official docs it cites:
https://bingx-api.github.io/docs/#/en-us/common/authentication (header `X-BX-APIKEY`;
`timestamp` in ms, optional `recvWindow` (default 5000), `signature` = hex HMAC-SHA256 of
the parameter string), https://bingx-api.github.io/docs/#/en-us/common/account-api.html
(apiPermissions: `permissions` 1 spot trade, 2 read, 3 perpetual futures, 4 universal
transfer, 5 withdraw, 7 sub-account transfer; `ipAddresses`) and the error code list there
(100001, 100004, 100410, 100412, 100413, 100419, 100421; HTTP 200 with a `code`).
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
    hmac_hex,
    ms,
    parse_int,
    recv_window,
    require,
    split_signature,
    verify,
    without_passphrase,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

DEFAULT_RECV_WINDOW_MS = 5_000

_ERRORS: dict[Refusal, tuple[int, str]] = without_passphrase(
    {
        Refusal.UNKNOWN_KEY: (100413, "Incorrect apiKey"),
        Refusal.KEY_EXPIRED: (100413, "Incorrect apiKey"),
        Refusal.BAD_SIGNATURE: (100001, "Signature verification failed"),
        Refusal.BAD_TIMESTAMP: (100421, "Null timestamp or timestamp mismatch"),
        Refusal.IP_REFUSED: (100419, "IP does not match IP whitelist"),
        Refusal.NO_PERMISSION: (
            100004,
            "Permission denied as the API key was created without the permission",
        ),
        # ccxt files this one under OperationFailed (exchanges.md): faithful, not a typo.
        Refusal.RATE_LIMITED: (
            100410,
            "The endpoint trigger frequency limit rule is currently in the disabled period",
        ),
    }
)


class Bingx(ExchangeSim):
    name = "bingx"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("X-BX-APIKEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        api_key = require(self.presented_key(request))
        payload, signature = split_signature(request.raw_query)
        if not signature:
            raise Refused(Refusal.MISSING_CREDENTIALS)
        params = request.query
        stamp_text = params.get("timestamp")
        if not stamp_text:
            raise Refused(Refusal.BAD_TIMESTAMP)
        window = recv_window(params.get("recvWindow"), DEFAULT_RECV_WINDOW_MS)
        check_window(request, parse_int(stamp_text), behind_ms=window, ahead_ms=window)
        key = self.known_key(state, api_key)
        # BingX signs the parameter string before URL-encoding (ccxt signs `rawencode`).
        verify(hmac_hex(key.secret, unquote(payload)), signature)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("Service Unavailable", 503)
        if refusal is Refusal.NOT_FOUND:
            return Reply.json({"code": 100400, "msg": "this api is not exist"}, 404)
        if refusal is Refusal.MISSING_CREDENTIALS:
            if not self.presented_key(request):
                return Reply.json({"code": 100413, "msg": "Null apiKey"})
            return Reply.json({"code": 100412, "msg": "Null signature"})
        code, msg = _ERRORS[refusal]
        return Reply.json({"code": code, "msg": msg, "timestamp": request.now_ms})

    def api_permissions(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        codes = [
            (1, key.spot_trade or key.margin),
            (2, key.read),
            (3, key.futures),
            (4, key.transfer),
            (5, key.withdraw),
        ]
        data = {
            "apiKey": key.api_key,
            "permissions": [code for code, granted in codes if granted],
            "ipAddresses": list(key.ip_whitelist or ()),
            "note": key.label,
        }
        return Reply.json({"code": 0, "msg": "", "timestamp": request.now_ms, "data": data})

    def api_restrictions(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        data = {
            "ipRestrict": key.ip_whitelist is not None,
            "createTime": ms(key.created_at),
            "permitsUniversalTransfer": key.transfer,
            "enableReading": key.read,
            "enableFutures": key.futures,
            "enableSpotAndMarginTrading": key.spot_trade or key.margin,
        }
        return Reply.json({"code": 0, "msg": "", "timestamp": request.now_ms, "data": data})

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            ("GET", "/openApi/v1/account/apiPermissions"): Endpoint(self.api_permissions),
            ("GET", "/openApi/v1/account/apiRestrictions"): Endpoint(self.api_restrictions),
        }
