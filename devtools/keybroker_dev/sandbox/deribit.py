"""Deribit: `GET /api/v2/private/list_api_keys` and `GET /api/v2/public/auth`.

Follows docs/facts/exchanges.md § Deribit and the official docs it cites:
https://docs.deribit.com/#authentication (the `deri-hmac-sha256` Authorization header:
`id=<client_id>,ts=<ms>,sig=<hex HMAC-SHA256 of ts\\nnonce\\nMETHOD\\nURI\\nBODY\\n>,
nonce=<nonce>`; and `public/auth` with `client_credentials` or `client_signature`),
https://docs.deribit.com/#private-list_api_keys (result: every key of the account, with
`client_id`, `client_secret`, `max_scope`, `enabled`, `ip_whitelist`; scope
`account:read`) and the JSON-RPC error list (10000 authorization_required,
13004 invalid_credentials, 13009 unauthorized, 13021 forbidden, 10028 too_many_requests,
10040 retry). The timestamp window (60 s) and the error for a caller IP outside the
whitelist (rendered as 13021 forbidden) are unconfirmed (exchanges.md "Not confirmed").

All of the sandbox's Deribit keys belong to one account: `list_api_keys` lists them all,
client secrets included, exactly as the documented example does.
"""

from __future__ import annotations

import re
import secrets

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
    verify,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 60_000
_HEADER = re.compile(r"^deri-hmac-sha256\s+(?P<fields>.+)$")

_ERRORS: dict[Refusal, tuple[int, int, str]] = {
    Refusal.MISSING_CREDENTIALS: (400, 10000, "authorization_required"),
    Refusal.UNKNOWN_KEY: (400, 13004, "invalid_credentials"),
    Refusal.KEY_EXPIRED: (400, 13004, "invalid_credentials"),
    Refusal.BAD_SIGNATURE: (400, 13009, "unauthorized"),
    Refusal.BAD_PASSPHRASE: (400, 13009, "unauthorized"),
    Refusal.BAD_TIMESTAMP: (400, 13009, "unauthorized"),
    Refusal.IP_REFUSED: (400, 13021, "forbidden"),
    Refusal.NO_PERMISSION: (400, 13021, "forbidden"),
    Refusal.RATE_LIMITED: (429, 10028, "too_many_requests"),
    Refusal.UNAVAILABLE: (503, 10040, "retry"),
    Refusal.NOT_FOUND: (404, 11050, "bad_request"),
}


def _header_fields(value: str | None) -> dict[str, str]:
    match = _HEADER.match(value or "")
    if not match:
        return {}
    fields = {}
    for part in match.group("fields").split(","):
        name, _, item = part.strip().partition("=")
        fields[name] = item
    return fields


def scope(key: SandboxKey) -> str:
    """The key's `max_scope` in Deribit's grammar; withdrawals need `wallet:read_write`."""
    read = "read" if key.read else "none"
    trade = "read_write" if (key.spot_trade or key.futures or key.margin) else read
    wallet = "read_write" if (key.withdraw or key.transfer) else read
    return f"account:{read} trade:{trade} wallet:{wallet} block_trade:{read}"


def _rpc(request: SandboxRequest, member: str, value: object, status: int = 200) -> Reply:
    """Deribit's JSON-RPC envelope around a `result` or an `error`."""
    body = {
        "jsonrpc": "2.0",
        member: value,
        "testnet": False,
        "usIn": request.now_ms * 1000,
        "usOut": request.now_ms * 1000 + 150,
        "usDiff": 150,
    }
    return Reply.json(body, status)


class Deribit(ExchangeSim):
    name = "deribit"

    def presented_key(self, request: SandboxRequest) -> str | None:
        fields = _header_fields(request.headers.get("Authorization"))
        return fields.get("id") or request.query.get("client_id")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        fields = _header_fields(request.headers.get("Authorization"))
        if not all(fields.get(name) for name in ("id", "ts", "sig", "nonce")):
            raise Refused(Refusal.MISSING_CREDENTIALS)
        key = self.known_key(state, fields["id"])
        check_window(request, parse_int(fields["ts"]), WINDOW_MS, WINDOW_MS)
        body = request.text
        payload = f"{fields['ts']}\n{fields['nonce']}\n{request.method}\n{request.target}\n{body}\n"
        verify(hmac_hex(key.secret, payload), fields["sig"])
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        status, code, message = _ERRORS[refusal]
        return _rpc(request, "error", {"code": code, "message": message}, status)

    def _result(self, request: SandboxRequest, result: object) -> Reply:
        return _rpc(request, "result", result)

    def list_api_keys(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        entries = [
            {
                "timestamp": ms(other.created_at),
                "max_scope": scope(other),
                "id": index + 1,
                "enabled": not other.expired(request.now),
                "default": False,
                "client_secret": other.secret,
                "client_id": other.api_key,
                "name": other.label,
                "enabled_features": [],
                "ip_whitelist": list(other.ip_whitelist or ()),
                "public_key": "",
            }
            for index, other in enumerate(state.keys_of(self.name))
        ]
        return self._result(request, entries)

    def public_auth(self, request: SandboxRequest, state: SandboxState) -> Reply:
        key = self._auth_grant(request, state)
        self.admit(request, key)
        result = {
            "access_token": secrets.token_urlsafe(24),
            "expires_in": 900,
            "refresh_token": secrets.token_urlsafe(24),
            "scope": f"connection mainaccount {scope(key)}",
            "token_type": "bearer",
            "enabled_features": [],
        }
        return self._result(request, result)

    def _auth_grant(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        query = request.query
        grant = query.get("grant_type")
        key = state.find_key(self.name, query.get("client_id"))
        if grant not in ("client_credentials", "client_signature"):
            raise Refused(Refusal.MISSING_CREDENTIALS)
        if key is None:
            raise Refused(Refusal.UNKNOWN_KEY)
        if grant == "client_credentials":
            verify(key.secret, query.get("client_secret"), Refusal.UNKNOWN_KEY)
            return key
        stamp = query.get("timestamp")
        check_window(request, parse_int(stamp), WINDOW_MS, WINDOW_MS)
        payload = f"{stamp}\n{query.get('nonce', '')}\n{query.get('data', '')}"
        verify(hmac_hex(key.secret, payload), query.get("signature"))
        return key

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            ("GET", "/api/v2/private/list_api_keys"): Endpoint(self.list_api_keys),
            ("GET", "/api/v2/public/auth"): Endpoint(public=self.public_auth),
        }
