"""Bybit: `GET /v5/user/query-api`.

Follows docs/facts/exchanges.md § Bybit and the official docs it cites:
https://bybit-exchange.github.io/docs/v5/guide#authentication (headers `X-BAPI-API-KEY`,
`X-BAPI-TIMESTAMP` in ms, `X-BAPI-RECV-WINDOW`, `X-BAPI-SIGN` = hex HMAC-SHA256 of
timestamp + apiKey + recvWindow + queryString|jsonBody, or for a self-generated RSA key
the base64 RSA PKCS#1 v1.5 SHA-256 signature of the same string; accepted when
`server_time - recv_window <= timestamp < server_time + 1000`),
https://bybit-exchange.github.io/docs/v5/user/apikey-info (response fields) and
https://bybit-exchange.github.io/docs/v5/error (10002, 10003, 10004, 10005, 10006, 10010,
33004; these come with HTTP 200 and a `retCode`).
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
    iso_z,
    parse_int,
    require,
    verify,
    verify_pem_signature,
    without_passphrase,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

DEFAULT_RECV_WINDOW_MS = 5_000

_ERRORS: dict[Refusal, tuple[int, str]] = without_passphrase(
    {
        Refusal.UNKNOWN_KEY: (10003, "API key is invalid."),
        Refusal.KEY_EXPIRED: (33004, "Your api key has expired."),
        Refusal.BAD_SIGNATURE: (
            10004,
            "Error sign, please check your signature generation algorithm.",
        ),
        Refusal.BAD_TIMESTAMP: (10002, "The request time exceeds the time window range."),
        Refusal.IP_REFUSED: (
            10010,
            "Unmatched IP, please check your API key's bound IP addresses.",
        ),
        Refusal.NO_PERMISSION: (10005, "Permission denied, please check your API key permissions."),
        Refusal.RATE_LIMITED: (10006, "Too many visits. Exceeded the API Rate Limit."),
    }
)


class Bybit(ExchangeSim):
    name = "bybit"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("X-BAPI-API-KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        api_key = require(self.presented_key(request))
        key = self.known_key(state, api_key)
        stamp_text = require(request.headers.get("X-BAPI-TIMESTAMP"))
        stamp = parse_int(stamp_text)
        window_text = request.headers.get("X-BAPI-RECV-WINDOW") or str(DEFAULT_RECV_WINDOW_MS)
        window = parse_int(window_text)
        check_window(request, stamp, behind_ms=window, ahead_ms=1000)
        signed = request.text if request.method == "POST" else request.raw_query
        payload = stamp_text + api_key + window_text + signed
        signature = require(request.headers.get("X-BAPI-SIGN"))
        if key.key_type == "rsa":  # self-generated key: base64 RSA-SHA256, same payload
            if not verify_pem_signature(key.secret, payload, signature):
                raise Refused(Refusal.BAD_SIGNATURE)
        else:
            verify(hmac_hex(key.secret, payload), signature)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("Service Unavailable", 503)
        if refusal is Refusal.NOT_FOUND:
            return Reply.text("", 404)
        if refusal is Refusal.MISSING_CREDENTIALS:
            if not self.presented_key(request):
                refusal = Refusal.UNKNOWN_KEY
            elif not request.headers.get("X-BAPI-SIGN"):
                refusal = Refusal.BAD_SIGNATURE
            else:
                refusal = Refusal.BAD_TIMESTAMP
        code, msg = _ERRORS[refusal]
        body = {
            "retCode": code,
            "retMsg": msg,
            "result": {},
            "retExtInfo": {},
            "time": request.now_ms,
        }
        return Reply.json(body)

    def query_api(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        wallet = []
        if key.transfer:
            wallet += ["AccountTransfer", "SubMemberTransfer"]
        if key.withdraw:
            wallet.append("Withdraw")
        result = {
            "id": str(key.uid % 100_000_000),
            "note": key.label,
            "apiKey": key.api_key,
            "readOnly": 0 if key.can_write else 1,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"] if key.futures else [],
                "Spot": ["SpotTrade"] if key.spot_trade or key.margin else [],
                "Wallet": wallet,
                "Options": [],
                "Derivatives": ["DerivativesTrade"] if key.futures else [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
                "Earn": [],
            },
            "ips": list(key.ip_whitelist) if key.ip_whitelist is not None else ["*"],
            "type": 1,
            "deadlineDay": -1,
            "expiredAt": "",
            "createdAt": iso_z(key.created_at),
            "unified": 0,
            "uta": 1,
            "userID": key.uid,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }
        if key.expires_at is not None:
            days = (key.expires_at - request.now).days
            result["deadlineDay"] = max(days, 0)
            result["expiredAt"] = iso_z(key.expires_at)
        body = {
            "retCode": 0,
            "retMsg": "",
            "result": result,
            "retExtInfo": {},
            "time": request.now_ms,
        }
        return Reply.json(body)

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        # "Any permission can access this endpoint."
        return {("GET", "/v5/user/query-api"): Endpoint(self.query_api, needs_read=False)}
