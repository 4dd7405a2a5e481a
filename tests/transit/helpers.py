"""Helpers shared by the Transit end-to-end tests (tests/transit, tests/devmode)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.names import DEFAULT_TRANSIT_MOUNT
from keybroker_dev.sandbox import SandboxKey, SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP, new_key
from tests.sandbox.ccxt_client import _rewrite
from tests.sandbox.specs import BY_NAME

MOUNT = DEFAULT_TRANSIT_MOUNT
# account -> (exchange, sandbox label): robot keys of every signing scheme beyond plain
# HMAC (default sandbox keys, all able to trade).
ROBOT_SCHEMES = {
    "kcv2": ("kucoin", "key_v2"),  # passphrase HMAC'd with the secret
    "bnrsa": ("binance", "rsa"),  # RSA PKCS#1 v1.5 SHA-256 -> rsa-2048
    "bned": ("binance", "ed25519"),  # Ed25519 PEM -> ed25519
    "byrsa": ("bybit", "rsa"),  # RSA PKCS#1 v1.5 SHA-256 -> rsa-2048
    "cbes": ("coinbase", "cdp"),  # CDP ES256 JWT -> ecdsa-p256
    "cbed": ("coinbase", "cdp_ed25519"),  # CDP EdDSA JWT -> ed25519
}
# The same for site keys: read-only keys the tests add to the sandbox (site_scheme_keys).
SITE_SCHEMES = {
    "snrsa": ("binance", "site_rsa"),
    "sned": ("binance", "site_ed25519"),
    "syrsa": ("bybit", "site_rsa"),
    "scbes": ("coinbase", "site_cdp"),
    "scbed": ("coinbase", "site_cdp_ed25519"),
}
_SITE_KINDS: dict[str, dict[str, Any]] = {
    "site_rsa": {"key_type": "rsa"},
    "site_ed25519": {"key_type": "ed25519"},
    "site_cdp": {"key_type": "cdp"},
    "site_cdp_ed25519": {"key_type": "cdp", "cdp_alg": "EdDSA"},
}


def site_scheme_keys() -> list[SandboxKey]:
    """Read-only, egress-whitelisted keys of every asymmetric scheme, labelled as
    SITE_SCHEMES names them (the sandbox's default asymmetric keys can trade)."""
    return [
        new_key(exchange, label, read=True, ip_whitelist=(ROBOT_EGRESS_IP,), **_SITE_KINDS[label])
        for exchange, label in SITE_SCHEMES.values()
    ]


async def call_sandbox(instance: Any, sandbox: SandboxServer | str, exchange: str, key: Any) -> Any:
    """Send the exchange's self-inspection request with a consumer's ccxt object (async)
    to the sandbox (a server, or the exchange's sandbox URL); the sandbox verifies its
    signature. `key`: a SandboxKey, or anything with its `api_key` (HTX's uid is then
    asked for with a signed request first, as a consumer would). Returns the spec's
    (can_trade, can_withdraw, ip facts) reading of the answer."""
    url = sandbox if isinstance(sandbox, str) else sandbox.exchange_urls[exchange]
    instance.urls["api"] = _rewrite(instance.urls["api"], url, getattr(instance, "hostname", None))
    instance.enableRateLimit = False
    spec = BY_NAME[exchange]
    try:
        if exchange == "htx" and getattr(key, "uid", None) is None:
            uid = (await instance.v2private_get_user_uid())["data"]
            key = SimpleNamespace(api_key=key.api_key, uid=uid)
        return spec.rights(await getattr(instance, spec.method)(spec.params(key)), key)
    finally:
        await instance.close()


def private_parts(secret: str) -> list[bytes]:
    """The private numbers of a PEM or base64 key (not its public part, which may show)."""
    if "PRIVATE KEY" in secret:
        private: Any = serialization.load_pem_private_key(secret.encode(), None)
        if isinstance(private, rsa.RSAPrivateKey):
            numbers = private.private_numbers()
            ints = [numbers.d, numbers.p, numbers.q]
            return [n.to_bytes((n.bit_length() + 7) // 8) for n in ints]
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return [private.private_numbers().private_value.to_bytes(32)]
        raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw
        return [private.private_bytes(*raw, serialization.NoEncryption())]
    try:
        decoded = base64.b64decode(secret, validate=True)
    except ValueError:
        return [secret.encode()]
    return [secret.encode(), decoded, decoded[:32]]  # Kraken; CDP Ed25519: seed + public


def secret_forms(secret: str) -> list[str]:
    """The secret, and its private bytes as base64 (both alphabets) and hex: how a leak
    could show up in an answer."""
    # as text, as inside a JSON string (a PEM's newlines escaped), as base64
    forms = [secret, json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()]
    for part in private_parts(secret):
        forms += [base64.b64encode(part).decode().rstrip("=")]
        forms += [base64.urlsafe_b64encode(part).decode().rstrip("="), part.hex()]
    return forms


def assert_no_secret(value: Any, secrets: list[str], where: str) -> None:
    """No form of any secret in `value`: a text (e.g. an HTTP body), a list of texts, or
    data dumped as JSON."""
    if isinstance(value, str):
        dump = value
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        dump = "\n".join(value)
    else:
        dump = json.dumps(value, default=str)
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in dump, f"a secret shows in {where}"
