"""Coinbase Advanced Trade: GET /api/v3/brokerage/key_permissions (docs/facts/exchanges.md).

Both key kinds are inspected with the same request, signed as ccxt signs it:
- CDP keys (current): the api key is the key name `organizations/.../apiKeys/...` and the
  secret a private key; ccxt sends `Authorization: Bearer <JWT>`, signed ES256 with an
  EC P-256 key in PEM, or EdDSA with an Ed25519 key given as base64 of its 64 bytes
  (ccxt's test for the latter: an 88-character or `=`-terminated secret). The private key
  is parsed here first, so a truncated paste is `invalid_credentials` without a request.
- legacy HMAC keys: `CB-ACCESS-*` headers.
Rights: `can_view`, `can_trade`, `can_transfer`; no IP facts exist. ccxt files upper-case
RESOURCE_EXHAUSTED as plain ExchangeError.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from broker.exchanges.base import Adapter, Credentials, require_dict
from broker.exchanges.errors import reason
from broker.reasons import Inspection, Permissions, Reason, ReasonCode


class CoinbaseAdapter(Adapter):
    id = "coinbase"
    error_codes = {
        "RESOURCE_EXHAUSTED": ReasonCode.RATE_LIMITED,
        "resource_exhausted": ReasonCode.RATE_LIMITED,
        "rate_limit_exceeded": ReasonCode.RATE_LIMITED,
        "PERMISSION_DENIED": ReasonCode.READ_DISABLED,
        "authentication_error": ReasonCode.INVALID_CREDENTIALS,
        "invalid_token": ReasonCode.INVALID_CREDENTIALS,
        "expired_token": ReasonCode.INVALID_CREDENTIALS,
        "revoked_token": ReasonCode.INVALID_CREDENTIALS,
        "UNAUTHENTICATED": ReasonCode.INVALID_CREDENTIALS,
    }

    def error_code(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return None
        error = body.get("error")
        if isinstance(error, str):
            return error
        if isinstance(body.get("errors"), list) and body["errors"]:
            first = body["errors"][0]
            if isinstance(first, dict) and first.get("id") is not None:
                return str(first["id"])
        return None

    def precheck(self, credentials: Credentials) -> Reason | None:
        if not is_cdp_key(credentials):
            return super().precheck(credentials)
        if credentials.api_key.startswith("-----BEGIN"):
            return reason(
                ReasonCode.INVALID_CREDENTIALS,
                self.id,
                "a CDP key's api key is its name (organizations/.../apiKeys/...), not a public key",
            )
        if not cdp_secret_loads(credentials.secret):
            return reason(
                ReasonCode.INVALID_CREDENTIALS,
                self.id,
                "the CDP key's private key cannot be read: paste the whole secret (an EC "
                "key with its BEGIN and END lines, or the Ed25519 key's base64)",
            )
        return None

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.v3_private_get_brokerage_key_permissions())


def is_cdp_key(credentials: Credentials) -> bool:
    """ccxt's own test for a key it signs with a JWT instead of HMAC."""
    secret = credentials.secret
    return (
        "organizations/" in credentials.api_key
        or secret.startswith("-----BEGIN")
        or len(secret) == 88
        or secret.endswith("=")
    )


def cdp_secret_loads(secret: str) -> bool:
    """The secret is a key ccxt can sign with: EC P-256 PEM (ES256), or base64 of an
    Ed25519 seed and public key (EdDSA; ccxt signs with the first 32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if secret.startswith("-----BEGIN"):
        try:
            key = load_pem_private_key(secret.encode(), password=None)
        except (ValueError, TypeError):
            return False
        return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 64


def parse(answer: Any) -> Inspection:
    data = require_dict(answer, "key_permissions")
    transfer = data.get("can_transfer") is True
    return Inspection(
        exchange="coinbase",
        permissions=Permissions(
            read=data.get("can_view") is True,
            spot_trade=data.get("can_trade") is True,
            withdraw=transfer,  # "transfer" is Coinbase's word for moving funds out
            transfer=transfer,
        ),
        ip_restricted=None,  # Coinbase does not report an IP allowlist
        ip_whitelist=None,
    )
