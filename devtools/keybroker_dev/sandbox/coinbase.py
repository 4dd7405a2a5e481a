"""Coinbase Advanced Trade: `GET /api/v3/brokerage/key_permissions`.

Follows docs/facts/exchanges.md § Coinbase and the official docs it cites:
https://docs.cdp.coinbase.com/advanced-trade/reference/retailbrokerageapi_getapikeypermissions
(`can_view`, `can_trade`, `can_transfer`, `portfolio_uuid`, `portfolio_type`),
https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication
(CDP keys: `Authorization: Bearer <JWT>` signed ES256 with the key's EC private key, or
EdDSA with an Ed25519 key; claims `sub` = key name, `nbf`, `exp` = nbf + 120 s, `uri` =
"METHOD host/path"), and the legacy HMAC scheme ccxt still speaks (`CB-ACCESS-KEY`,
`CB-ACCESS-SIGN` = hex HMAC-SHA256 of timestamp + METHOD + path + body,
`CB-ACCESS-TIMESTAMP` in seconds). Errors: HTTP 401 `Unauthorized` as plain text;
`request timestamp expired`; 429 and 503 as plain text.

A JWT's `uri` names the host the client believed it was calling; the sandbox checks the
method and the endpoint path in it, not the host, since a rewritten base URL changes it.
Unconfirmed (exchanges.md): any IP allowlist error; rendered as 401 `Unauthorized`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

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
    require,
    same,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

HMAC_WINDOW_MS = 30_000
JWT_MAX_LIFETIME_S = 120
CLOCK_SKEW_S = 5


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify_jwt_signature(key: SandboxKey, signed: bytes, signature: bytes, alg: str) -> bool:
    try:
        if alg == "ES256" and key.secret.startswith("-----BEGIN"):
            private = serialization.load_pem_private_key(key.secret.encode(), password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey) or len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            private.public_key().verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == "EdDSA" and not key.secret.startswith("-----BEGIN"):
            seed = base64.b64decode(key.secret)[:32]
            public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
            public.verify(signature, signed)
            return True
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return False


class Coinbase(ExchangeSim):
    name = "coinbase"

    def presented_key(self, request: SandboxRequest) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            try:
                claims = json.loads(_b64url(auth[7:].split(".")[1]))
            except (IndexError, ValueError, binascii.Error):
                return None
            subject = claims.get("sub") if isinstance(claims, dict) else None
            return subject if isinstance(subject, str) else None
        return request.headers.get("CB-ACCESS-KEY")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self._authenticate_jwt(request, state, auth[7:])
        api_key = require(request.headers.get("CB-ACCESS-KEY"))
        signature = require(request.headers.get("CB-ACCESS-SIGN"))
        stamp_text = require(request.headers.get("CB-ACCESS-TIMESTAMP"))
        key = state.find_key(self.name, api_key)
        if key is None or key.key_type != "hmac":
            raise Refused(Refusal.UNKNOWN_KEY)
        check_window(request, parse_int(stamp_text) * 1000, HMAC_WINDOW_MS, HMAC_WINDOW_MS)
        payload = stamp_text + request.method + request.path + request.text
        if not same(hmac_hex(key.secret, payload), signature):
            raise Refused(Refusal.BAD_SIGNATURE)
        return key

    def _authenticate_jwt(
        self, request: SandboxRequest, state: SandboxState, token: str
    ) -> SandboxKey:
        try:
            header_part, claims_part, signature_part = token.split(".")
            header = json.loads(_b64url(header_part))
            claims = json.loads(_b64url(claims_part))
            signature = _b64url(signature_part)
        except (ValueError, binascii.Error):
            raise Refused(Refusal.BAD_SIGNATURE) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Refused(Refusal.BAD_SIGNATURE)
        key = state.find_key(self.name, str(claims.get("sub", "")))
        if key is None or key.key_type != "cdp" or header.get("kid") != key.api_key:
            raise Refused(Refusal.UNKNOWN_KEY)
        signed = f"{header_part}.{claims_part}".encode()
        if not _verify_jwt_signature(key, signed, signature, str(header.get("alg"))):
            raise Refused(Refusal.BAD_SIGNATURE)
        now = int(request.received_at)
        try:
            nbf, exp = int(claims["nbf"]), int(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise Refused(Refusal.BAD_SIGNATURE) from None
        if not (nbf - CLOCK_SKEW_S <= now < exp) or exp - nbf > JWT_MAX_LIFETIME_S:
            raise Refused(Refusal.BAD_TIMESTAMP)
        uris = claims.get("uris") or [claims.get("uri")]
        if not isinstance(uris, list):
            raise Refused(Refusal.BAD_SIGNATURE)
        wanted_method, wanted_path = request.method, request.path
        if not any(
            isinstance(uri, str)
            and uri.startswith(wanted_method + " ")
            and uri.split("?")[0].endswith(wanted_path)
            for uri in uris
        ):
            raise Refused(Refusal.BAD_SIGNATURE)
        return key

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal is Refusal.BAD_TIMESTAMP:
            body: dict[str, Any] = {
                "errors": [{"id": "authentication_error", "message": "request timestamp expired"}]
            }
            return Reply.json(body, 401)
        if refusal is Refusal.NO_PERMISSION:
            body = {
                "error": "PERMISSION_DENIED",
                "error_details": "Missing required scopes",
                "message": "Missing required scopes",
            }
            return Reply.json(body, 403)
        if refusal is Refusal.RATE_LIMITED:
            return Reply.text("Too Many Requests", 429)
        if refusal is Refusal.UNAVAILABLE:
            return Reply.text("Service Unavailable", 503)
        if refusal is Refusal.NOT_FOUND:
            return Reply.text("404 page not found", 404)
        return Reply.text("Unauthorized", 401)

    def key_permissions(
        self, request: SandboxRequest, key: SandboxKey, state: SandboxState
    ) -> Reply:
        body = {
            "can_view": key.read,
            "can_trade": key.spot_trade or key.margin or key.futures,
            "can_transfer": key.withdraw or key.transfer,
            "portfolio_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, key.api_key)),
            "portfolio_type": "DEFAULT",
        }
        return Reply.json(body)

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            ("GET", "/api/v3/brokerage/key_permissions"): Endpoint(
                self.key_permissions, needs_read=False
            )
        }
