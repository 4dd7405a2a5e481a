"""Helpers shared by the Transit end-to-end tests (tests/transit, tests/devmode)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.names import DEFAULT_TRANSIT_MOUNT
from keybroker_dev.sandbox import SandboxServer
from tests.sandbox.ccxt_client import _rewrite
from tests.sandbox.specs import BY_NAME

MOUNT = DEFAULT_TRANSIT_MOUNT


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
