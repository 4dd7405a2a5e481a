"""Binance: `GET /sapi/v1/account/apiRestrictions`.

Follows docs/facts/exchanges.md § Binance and the official docs it cites:
https://developers.binance.com/docs/wallet/account/api-key-permission (endpoint, fields) and
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security (SIGNED
endpoints: `X-MBX-APIKEY`, `timestamp`, `recvWindow` default 5000 max 60000, `signature` =
hex HMAC-SHA256 of the total params, or base64 RSA/Ed25519 for asymmetric keys; accepted
when `timestamp < serverTime + 1000` and `serverTime - timestamp <= recvWindow`), and
https://developers.binance.com/docs/binance-spot-api-docs/errors (-2014, -2015, -1022,
-1021, -1102, -1003, HTTP 401/400/429/503).
"""

from __future__ import annotations

from datetime import timedelta

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
    same,
    split_signature,
    verify_pem_signature,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
# "Enable Spot & Margin Trading" on a key without IP whitelist lapses after 30 days.
TRADING_AUTHORITY_DAYS = 30

_ERRORS: dict[Refusal, tuple[int, int, str]] = {
    Refusal.UNKNOWN_KEY: (401, -2015, "Invalid API-key, IP, or permissions for action."),
    Refusal.IP_REFUSED: (401, -2015, "Invalid API-key, IP, or permissions for action."),
    Refusal.KEY_EXPIRED: (401, -2015, "Invalid API-key, IP, or permissions for action."),
    Refusal.NO_PERMISSION: (401, -2015, "Invalid API-key, IP, or permissions for action."),
    Refusal.BAD_PASSPHRASE: (400, -1022, "Signature for this request is not valid."),
    Refusal.BAD_SIGNATURE: (400, -1022, "Signature for this request is not valid."),
    Refusal.BAD_TIMESTAMP: (
        400,
        -1021,
        "Timestamp for this request is outside of the recvWindow.",
    ),
    Refusal.RATE_LIMITED: (
        429,
        -1003,
        "Too many requests; current limit of IP({ip}) is 6000 requests per minute."
        " Please use WebSocket Streams for live updates to avoid polling the API.",
    ),
}


class Binance(ExchangeSim):
    name = "binance"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("X-MBX-APIKEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        api_key = require(self.presented_key(request))
        # totalParams = query string followed by the body (docs, "SIGNED Endpoint Examples").
        total = "&".join(part for part in (request.raw_query, request.text) if part)
        payload, signature = split_signature(total)
        params = request.query | request.form
        key = self.known_key(state, api_key)
        if signature is None:
            raise Refused(Refusal.MISSING_CREDENTIALS)
        stamp = parse_int(params.get("timestamp"))
        window = recv_window(params.get("recvWindow"), DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS)
        check_window(request, stamp, behind_ms=window, ahead_ms=1000)
        if key.key_type in ("rsa", "ed25519"):
            valid = verify_pem_signature(key.secret, payload, signature)
        else:
            valid = same(hmac_hex(key.secret, payload), signature.lower())
        if not valid:
            raise Refused(Refusal.BAD_SIGNATURE)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.MISSING_CREDENTIALS:
            if not self.presented_key(request):
                return Reply.json({"code": -2014, "msg": "API-key format invalid."}, 401)
            return Reply.json(
                {
                    "code": -1102,
                    "msg": "Mandatory parameter 'signature' was not sent, was empty/null,"
                    " or malformed.",
                },
                400,
            )
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("Service Unavailable.", 503)
        if refusal is Refusal.NOT_FOUND:
            return Reply.text("", 404)
        status, code, msg = _ERRORS[refusal]
        return Reply.json({"code": code, "msg": msg.format(ip=request.client_ip)}, status)

    def api_restrictions(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        body: dict[str, object] = {
            "ipRestrict": key.ip_whitelist is not None,
            "createTime": ms(key.created_at),
            "enableReading": key.read,
            "enableWithdrawals": key.withdraw,
            "enableInternalTransfer": key.transfer,
            "enableMargin": key.margin,
            "enableFutures": key.futures,
            "permitsUniversalTransfer": key.transfer,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": key.read,
            "enableSpotAndMarginTrading": key.spot_trade,
            "enablePortfolioMarginTrading": False,
        }
        if key.spot_trade and (key.ip_whitelist is None or key.expires_at is not None):
            lapse = key.expires_at or key.created_at + timedelta(days=TRADING_AUTHORITY_DAYS)
            body["tradingAuthorityExpirationTime"] = ms(lapse)
        return Reply.json(body)

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        # "Any API key can call this endpoint": no read right needed.
        return {
            ("GET", "/sapi/v1/account/apiRestrictions"): Endpoint(
                self.api_restrictions, needs_read=False
            )
        }
