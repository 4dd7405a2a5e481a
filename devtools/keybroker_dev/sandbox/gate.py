"""Gate: `GET /api/v4/account/detail` and `GET /api/v4/account/main_keys`.

Follows docs/facts/exchanges.md § Gate and the official docs it cites:
https://www.gate.io/docs/developers/apiv4/#authentication (headers `KEY`, `Timestamp` in
seconds, `SIGN` = hex HMAC-SHA512 of METHOD\\n/api/v4<path>\\n<query, not URL-encoded>\\n
hex(SHA512(body))\\n<timestamp>; a timestamp more than 60 s off is REQUEST_EXPIRED),
https://www.gate.io/docs/developers/apiv4/#get-account-detail and
https://www.gate.io/docs/developers/apiv4/#query-all-main-account-key-information (shapes;
keys shown masked, perms as `{name, read_only}`), and
https://www.gate.io/docs/developers/apiv4/#error-handling (labels and HTTP statuses).

Both endpoints need the key's `account` permission, which the sandbox grants with `read`.
All of the sandbox's Gate keys belong to one main account, so `main_keys` lists every one
of them (masked) and the caller must find its own by prefix, as against the real API.
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Reply,
    SandboxRequest,
    check_window,
    hmac_hex,
    parse_int,
    require,
    verify,
    without_passphrase,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 60_000
ACCOUNT_USER_ID = 1667201533

_ERRORS: dict[Refusal, tuple[int, str, str]] = without_passphrase(
    {
        Refusal.MISSING_CREDENTIALS: (
            401,
            "MISSING_REQUIRED_HEADER",
            "Missing required header: {h}",
        ),
        Refusal.UNKNOWN_KEY: (401, "INVALID_KEY", "Invalid key provided"),
        Refusal.KEY_EXPIRED: (401, "INVALID_KEY", "Invalid key provided"),
        Refusal.BAD_SIGNATURE: (401, "INVALID_SIGNATURE", "Signature mismatch"),
        Refusal.BAD_TIMESTAMP: (
            401,
            "REQUEST_EXPIRED",
            "gap between request Timestamp and server time exceeds 60",
        ),
        Refusal.IP_REFUSED: (
            403,
            "IP_FORBIDDEN",
            "Request IP not in whitelist: {ip}",
        ),
        Refusal.NO_PERMISSION: (
            403,
            "FORBIDDEN",
            "Request API key does not have account permission",
        ),
        Refusal.RATE_LIMITED: (429, "TOO_MANY_REQUESTS", "Request Rate limit Exceeded"),
        Refusal.UNAVAILABLE: (503, "SERVER_ERROR", "Internal server error"),
        Refusal.NOT_FOUND: (404, "NOT_FOUND", "Not found"),
    }
)


def masked(api_key: str) -> str:
    return api_key[:12] + "*****"


class Gate(ExchangeSim):
    name = "gate"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.headers.get("KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        headers = request.headers
        for name in ("KEY", "Timestamp", "SIGN"):
            require(headers.get(name))
        stamp_text = headers["Timestamp"]
        check_window(request, parse_int(stamp_text) * 1000, WINDOW_MS, WINDOW_MS)
        key = self.known_key(state, headers["KEY"])
        body_hash = hashlib.sha512(request.body).hexdigest()
        payload = "\n".join(
            (request.method, request.path, unquote(request.raw_query), body_hash, stamp_text)
        )
        verify(hmac_hex(key.secret, payload, "sha512"), headers["SIGN"])
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        status, label, message = _ERRORS[refusal]
        missing = next((h for h in ("KEY", "Timestamp", "SIGN") if not request.headers.get(h)), "")
        text = message.format(ip=request.client_ip, h=missing)
        return Reply.json({"label": label, "message": text}, status)

    def account_detail(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        body = {
            "user_id": ACCOUNT_USER_ID,
            "ip_whitelist": list(key.ip_whitelist or ()),
            "currency_pairs": [],
            "key": {"mode": 1},
            "tier": 2,
            "copy_trading_role": 0,
        }
        return Reply.json(body)

    def main_keys(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        return Reply.json([self._key_info(other) for other in state.keys_of(self.name)])

    @staticmethod
    def _key_info(key: SandboxKey) -> dict[str, object]:
        perms: list[dict[str, object]] = []
        if key.read:
            perms.append({"name": "account", "read_only": True})
        if key.read or key.spot_trade:
            perms.append({"name": "spot", "read_only": not key.spot_trade})
        if key.margin:
            perms.append({"name": "margin", "read_only": False})
        if key.futures:
            perms.append({"name": "futures", "read_only": False})
            perms.append({"name": "delivery", "read_only": False})
        if key.withdraw or key.transfer:
            perms.append({"name": "wallet", "read_only": False})
        elif key.read:
            perms.append({"name": "wallet", "read_only": True})
        created = int(key.created_at.timestamp())
        return {
            "state": 1,
            "mode": 1,
            "name": key.label,
            "user_id": ACCOUNT_USER_ID,
            "perms": perms,
            "ip_whitelist": list(key.ip_whitelist or ()),
            "currency_pairs": [],
            "key": masked(key.api_key),
            "created_at": created,
            "update_at": created,
            "last_access": created,
        }

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            ("GET", "/api/v4/account/detail"): Endpoint(self.account_detail),
            ("GET", "/api/v4/account/main_keys"): Endpoint(self.main_keys),
        }
