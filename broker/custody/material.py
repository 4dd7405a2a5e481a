"""What of an exchange secret goes into Transit, and how ccxt will ask for it back.

Each exchange secret has one *scheme*: the way ccxt's `sign()` uses it (docs/custody.md,
"Schemes"). The scheme decides the Transit key type, the bytes imported, and the
stand-in secret a signing ccxt object holds instead (broker/signing.py):

| scheme        | ccxt uses the secret as                               | Transit type    |
|---------------|-------------------------------------------------------|-----------------|
| `hmac`        | HMAC key `secret.encode()` (11 exchanges)             | `hmac`          |
| `hmac-b64`    | HMAC key `base64decode(secret)` (Kraken)              | `hmac`          |
| `ed25519-pem` | PKCS#8 PEM, `eddsa()` (Binance, len <= 120)           | `ed25519`       |
| `rsa-pem`     | PEM, `rsa()` PKCS#1 v1.5 SHA-256 (Binance, Bybit)     | `rsa-<bits>`    |
| `cdp-es256`   | EC P-256 PEM, `jwt(... ES256)` (Coinbase CDP)         | `ecdsa-p256`    |
| `cdp-ed25519` | base64(seed+public), `jwt(... EdDSA)` (Coinbase CDP)  | `ed25519`       |

HMAC keys shorter than Transit's 32-byte minimum (docs/facts/transit.md §1) are padded
with zero bytes: HMAC itself pads every key shorter than the hash's block size with
zeros (RFC 2104 §2; the smallest block of a hash Transit offers is 72 bytes, SHA3-512),
so the padded key gives the same MAC for every algorithm. Keys above 512 bytes cannot
be imported: `NotImportable`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

Scheme = Literal["hmac", "hmac-b64", "ed25519-pem", "rsa-pem", "cdp-es256", "cdp-ed25519"]
SCHEMES: tuple[Scheme, ...] = (
    "hmac",
    "hmac-b64",
    "ed25519-pem",
    "rsa-pem",
    "cdp-es256",
    "cdp-ed25519",
)
HMAC_MIN_KEY, HMAC_MAX_KEY = 32, 512  # docs/facts/transit.md §1 (keysutil HmacMin/MaxKeySize)
RSA_TYPES = {2048: "rsa-2048", 3072: "rsa-3072", 4096: "rsa-4096"}
# ccxt picks Binance's Ed25519 or RSA signer by the PEM's length (binance.sign).
BINANCE_RSA_MIN_LEN = 121
PEM_EXCHANGES = frozenset({"binance", "bybit"})  # ccxt signs with rsa()/eddsa() on a PEM


class NotImportable(ValueError):
    """The secret cannot become a Transit key; the message names why, never the secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SecretForm:
    scheme: Scheme
    transit_type: str
    material: bytes = field(repr=False)  # the import payload: secret


def _hmac_material(raw: bytes) -> bytes:
    if len(raw) > HMAC_MAX_KEY:
        raise NotImportable(
            "secret_too_long", f"an HMAC secret above {HMAC_MAX_KEY} bytes cannot be imported"
        )
    return raw.ljust(HMAC_MIN_KEY, b"\x00")


def _pkcs8(private: object) -> bytes:
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_pem(secret: str) -> object:
    try:
        return serialization.load_pem_private_key(secret.encode(), password=None)
    except (ValueError, TypeError):
        raise NotImportable("secret_format", "the PEM private key cannot be parsed") from None


def classify(exchange: str, secret: str) -> SecretForm:
    """The scheme ccxt will use for this secret, and what to import for it."""
    if exchange == "kraken":
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise NotImportable("secret_format", "a Kraken secret must be base64") from None
        return SecretForm("hmac-b64", "hmac", _hmac_material(raw))
    if exchange in PEM_EXCHANGES and "PRIVATE KEY" in secret:
        private = _load_pem(secret)
        if isinstance(private, rsa.RSAPrivateKey):
            if exchange == "binance" and len(secret) < BINANCE_RSA_MIN_LEN:
                raise NotImportable("secret_format", "ccxt would sign this PEM as Ed25519")
            key_type = RSA_TYPES.get(private.key_size)
            if key_type is None:
                raise NotImportable("secret_format", "Transit imports RSA 2048, 3072 or 4096 only")
            return SecretForm("rsa-pem", key_type, _pkcs8(private))
        if isinstance(private, ed25519.Ed25519PrivateKey) and exchange == "binance":
            if len(secret) >= BINANCE_RSA_MIN_LEN:
                raise NotImportable("secret_format", "ccxt would sign this PEM as RSA")
            return SecretForm("ed25519-pem", "ed25519", _pkcs8(private))
        raise NotImportable("secret_format", f"{exchange} does not sign with this kind of key")
    if exchange == "coinbase":
        if len(secret) == 88 or secret.endswith("="):  # ccxt's test for a CDP Ed25519 key
            try:
                seed = base64.b64decode(secret, validate=True)[:32]
                private_ed = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            except (binascii.Error, ValueError):
                raise NotImportable(
                    "secret_format", "the CDP Ed25519 secret is malformed"
                ) from None
            return SecretForm("cdp-ed25519", "ed25519", _pkcs8(private_ed))
        if "-----BEGIN" in secret:
            private = _load_pem(secret)
            if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
                private.curve, ec.SECP256R1
            ):
                raise NotImportable("secret_format", "a CDP PEM key must be EC P-256")
            return SecretForm("cdp-es256", "ecdsa-p256", _pkcs8(private))
    return SecretForm("hmac", "hmac", _hmac_material(secret.encode()))
