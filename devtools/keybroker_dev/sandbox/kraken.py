"""Kraken (spot): `POST /0/private/GetApiKeyInfo`.

Follows docs/facts/exchanges.md § Kraken and the official docs it cites:
https://docs.kraken.com/api/docs/guides/spot-rest-auth (headers `API-Key` and `API-Sign` =
base64 HMAC-SHA512 keyed with the base64-decoded secret over URI path + SHA256(nonce +
POST data); the nonce must increase for each key), https://docs.kraken.com/api/docs/rest-api/get-api-key-info
(response fields, `permissions`, `ipAllowlist`, `validUntil`; "API Key Permissions
Required: None") and https://docs.kraken.com/api/docs/guides/spot-errors (`EAPI:Invalid
key`, `EAPI:Invalid signature`, `EAPI:Invalid nonce`, `EGeneral:Permission denied`,
`EAPI:Rate limit exceeded`, `EService:Unavailable`; errors come with HTTP 200).

Permission names: read covers `query-funds`, `query-open-trades`, `query-closed-trades`
and `query-ledger`; spot/margin trading `modify-trades` and `cancel-close-trades`;
withdrawals and wallet transfers both need `withdraw-funds` on Kraken (WalletTransfer is
a funding call). Kraken spot keys have no futures right (Kraken Futures keys are separate).
Unconfirmed (exchanges.md): the error for a caller IP outside the allowlist, rendered as
`EGeneral:Permission denied`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Refused,
    Reply,
    SandboxRequest,
    hmac_digest,
    require,
    verify,
    without_passphrase,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

_DIGITS = re.compile(r"[0-9]{1,30}")

_ERRORS: dict[Refusal, str] = without_passphrase(
    {
        Refusal.MISSING_CREDENTIALS: "EAPI:Invalid key",
        Refusal.UNKNOWN_KEY: "EAPI:Invalid key",
        Refusal.KEY_EXPIRED: "EAPI:Invalid key",
        Refusal.BAD_SIGNATURE: "EAPI:Invalid signature",
        Refusal.BAD_TIMESTAMP: "EAPI:Invalid nonce",
        Refusal.IP_REFUSED: "EGeneral:Permission denied",
        Refusal.NO_PERMISSION: "EGeneral:Permission denied",
        Refusal.RATE_LIMITED: "EAPI:Rate limit exceeded",
        Refusal.UNAVAILABLE: "EService:Unavailable",
        Refusal.NOT_FOUND: "EGeneral:Unknown method",
    }
)


class Kraken(ExchangeSim):
    name = "kraken"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("API-Key")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        api_key = require(self.presented_key(request))
        presented = require(request.headers.get("API-Sign"))
        key = self.known_key(state, api_key)
        nonce_text = request.form.get("nonce", "")
        if not _DIGITS.fullmatch(nonce_text):
            raise Refused(Refusal.BAD_TIMESTAMP)
        try:
            secret = base64.b64decode(key.secret, validate=True)
        except binascii.Error:
            raise Refused(Refusal.BAD_SIGNATURE) from None
        digest = hashlib.sha256(nonce_text.encode() + request.body).digest()
        expected = base64.b64encode(hmac_digest(secret, request.path.encode() + digest, "sha512"))
        verify(expected.decode(), presented)
        # Checked after the signature so that a forged request cannot burn nonces.
        if not state.accept_nonce(key.api_key, int(nonce_text), key.nonce_window):
            raise Refused(Refusal.BAD_TIMESTAMP)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        status = 404 if refusal is Refusal.NOT_FOUND else 200
        return Reply.json({"error": [_ERRORS[refusal]]}, status)

    def api_key_info(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        rights = [
            ("query-funds", key.read),
            ("withdraw-funds", key.withdraw or key.transfer),
            ("query-open-trades", key.read),
            ("query-closed-trades", key.read),
            ("modify-trades", key.spot_trade or key.margin),
            ("cancel-close-trades", key.spot_trade or key.margin),
            ("query-ledger", key.read),
        ]
        created = str(int(key.created_at.timestamp()))
        result = {
            "apiKeyName": key.label,
            "apiKey": key.api_key,
            "nonce": request.form.get("nonce", "0"),
            "nonceWindow": key.nonce_window,
            "permissions": [name for name, granted in rights if granted],
            "iban": "AA88 N84G WOAK NMOI",
            "validUntil": str(int(key.expires_at.timestamp())) if key.expires_at else "0",
            "queryFrom": "0",
            "queryTo": "0",
            "createdTime": created,
            "modifiedTime": created,
            "ipAllowlist": list(key.ip_whitelist or ()),
            "lastUsed": str(int(request.received_at)),
        }
        return Reply.json({"error": [], "result": result})

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {("POST", "/0/private/GetApiKeyInfo"): Endpoint(self.api_key_info, needs_read=False)}
