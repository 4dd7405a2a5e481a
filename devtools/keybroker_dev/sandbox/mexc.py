"""MEXC: `GET /api/v3/account` and `POST /api/v3/order/test` (MEXC documents no endpoint
that reads a key's own rights; the broker probes spot trading with a test order).

Follows docs/facts/exchanges.md § MEXC and the official docs it cites:
https://mexcdevelop.github.io/apidocs/spot_v3_en/#signed (header `X-MEXC-APIKEY`;
`timestamp` in ms and `recvWindow` (default 5000, at most 60000) in the query;
`signature` = lowercase hex HMAC-SHA256 of the total params),
https://mexcdevelop.github.io/apidocs/spot_v3_en/#account-information (`canTrade`,
`canWithdraw`, `canDeposit`, `permissions`) and
https://mexcdevelop.github.io/apidocs/spot_v3_en/#error-code (700001, 700002, 700003,
700006, 700007, 10072; HTTP 429 rate limit), and the Test New Order endpoint of
https://mexcdevelop.github.io/apidocs/spot_v3_en/#test-new-order (permission
SPOT_DEAL_WRITE; validates an order, never sends it to the matching engine; answers `{}`).
A key without the trade right gets 700007. Parameters are signed like every other request
(ccxt sends them in the query for POST too); their own validation (size, balance, price
bands) is not modeled, as its error codes are not documented.

`canTrade`/`canWithdraw` are rendered from the key's rights, although MEXC may mean the
account (unconfirmed, docs/facts/exchanges.md): the broker trusts only a `false` there.
"""

from __future__ import annotations

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Refused,
    Reply,
    SandboxRequest,
    check_window,
    hmac_hex,
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
MAX_RECV_WINDOW_MS = 60_000

_ERRORS: dict[Refusal, tuple[int, int, str]] = without_passphrase(
    {
        Refusal.MISSING_CREDENTIALS: (400, 700001, "API-key format invalid"),
        # ccxt files 10072 under BadRequest (exchanges.md): faithful, the caller must map it.
        Refusal.UNKNOWN_KEY: (400, 10072, "Api key info invalid"),
        Refusal.KEY_EXPIRED: (400, 10072, "Api key info invalid"),
        Refusal.BAD_SIGNATURE: (400, 700002, "Signature for this request is not valid."),
        Refusal.BAD_TIMESTAMP: (
            400,
            700003,
            "Timestamp for this request is outside of the recvWindow.",
        ),
        # ccxt files 700006 under BadRequest too.
        Refusal.IP_REFUSED: (400, 700006, "IP [{ip}] not in the ip white list"),
        Refusal.NO_PERMISSION: (400, 700007, "No permission to access the endpoint."),
        Refusal.RATE_LIMITED: (429, 429, "Too Many Requests"),
        Refusal.NOT_FOUND: (404, 404, "Not Found"),
    }
)


class Mexc(ExchangeSim):
    name = "mexc"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("X-MEXC-APIKEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        api_key = require(self.presented_key(request))
        payload, signature = split_signature(request.raw_query)
        key = self.known_key(state, api_key)
        if not signature:
            raise Refused(Refusal.BAD_SIGNATURE)
        params = request.query
        window = recv_window(params.get("recvWindow"), DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS)
        check_window(request, parse_int(params.get("timestamp")), window, 1000)
        verify(hmac_hex(key.secret, payload), signature)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("service not available", 503)
        status, code, msg = _ERRORS[refusal]
        return Reply.json({"code": code, "msg": msg.format(ip=request.client_ip)}, status)

    def account(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        body = {
            "makerCommission": None,
            "takerCommission": None,
            "buyerCommission": None,
            "sellerCommission": None,
            "canTrade": key.spot_trade,
            "canWithdraw": key.withdraw,
            "canDeposit": True,
            "updateTime": None,
            "accountType": "SPOT",
            "balances": [],
            "permissions": ["SPOT"],
        }
        return Reply.json(body)

    def order_test(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        if not key.spot_trade:
            raise Refused(Refusal.NO_PERMISSION)
        return Reply.json({})  # validated; nothing placed, nothing kept

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            # Permission SPOT_ACCOUNT_READ.
            ("GET", "/api/v3/account"): Endpoint(self.account),
            # Permission SPOT_DEAL_WRITE, checked by the handler (not a read right).
            ("POST", "/api/v3/order/test"): Endpoint(self.order_test, needs_read=False),
        }
