"""ccxt exchange objects whose requests are signed through Vault Transit (docs/custody.md).

Under `transit` custody the site and the robot never hold an exchange secret. They get
a ccxt object of the exchange's own class, configured with a random *stand-in* secret of
the shape ccxt expects for the key's scheme (broker/custody/material.py). ccxt's own
`sign()` builds every request as usual; the one cryptographic primitive it calls with the
secret (`hmac`, `rsa`, `eddsa` or `jwt`) is replaced on that object by one that
recognises the stand-in and asks Vault instead:

    hmac(request, secret, algorithm, digest) -> transit/hmac/<key>/<algorithm>
    rsa(request, secret, alg, padding)       -> transit/sign/<key>/<alg> (pkcs1v15 or pss)
    eddsa(request, secret, curve, url)       -> transit/sign/<key> (ed25519, pure)
    jwt(request, secret, ..., ES256|EdDSA)   -> ccxt builds header.payload, Transit signs
                                                it (ES256: marshaling_algorithm=jws)

Everything else (parameter order, encodings, nonces, headers) stays ccxt's, so a request
is byte-identical to the one ccxt sends holding the secret, except for signatures that
are randomised by design (ECDSA; RSA-PSS): those verify under the same public key.
Calls with any other key (e.g. a broker id ccxt signs with its own constant) stay local.

Sync ccxt calls Vault inline (ccxt sync blocks anyway). Async ccxt would block its event
loop, so `fetch2` first signs in a worker thread and ccxt's own `fetch2` then takes that
presigned request; a second `sign()` in the same call (a retry) signs inline.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.custody.material import BINANCE_RSA_MIN_LEN, SCHEMES, Scheme

# ccxt passes hashlib constructors; Transit names the same functions (docs/facts/transit.md §3).
_TRANSIT_HASH = {
    "sha224": "sha2-224",
    "sha256": "sha2-256",
    "sha384": "sha2-384",
    "sha512": "sha2-512",
    "sha3_224": "sha3-224",
    "sha3_256": "sha3-256",
    "sha3_384": "sha3-384",
    "sha3_512": "sha3-512",
}
_CCXT_ALG = {"sha256": "sha2-256", "sha384": "sha2-384", "sha512": "sha2-512"}

# Transit call: (path relative to the mount, JSON body) -> the response's `data`.
TransitCall = Callable[[str, dict[str, Any]], dict[str, Any]]


class SigningUnavailable(Exception):
    """ccxt asked for a primitive Transit cannot provide for this key (e.g. SHA-1 HMAC)."""


@dataclass
class TransitSigner:
    """HMACs and signatures with one Transit key version; never sees key material."""

    call: TransitCall = field(repr=False)
    key: str
    version: int = 0  # 0: latest; the KV record pins the version it was proven with

    def hmac(self, message: bytes, algorithm: str) -> bytes:
        data = self.call(f"hmac/{self.key}/{algorithm}", self._body(message))
        return _payload(data["hmac"], urlsafe=False)

    def sign(self, message: bytes, path_suffix: str = "", **params: Any) -> bytes:
        data = self.call(f"sign/{self.key}{path_suffix}", self._body(message) | params)
        return _payload(data["signature"], urlsafe=params.get("marshaling_algorithm") == "jws")

    def _body(self, message: bytes) -> dict[str, Any]:
        body: dict[str, Any] = {"input": base64.b64encode(message).decode()}
        if self.version:
            body["key_version"] = self.version
        return body


def _payload(value: str, *, urlsafe: bool) -> bytes:
    """The bytes of Transit's `vault:v<N>:<base64>` answer."""
    encoded = value.split(":", 2)[2]
    if urlsafe:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    return base64.b64decode(encoded)


def _pem_like(kind: str, token: str) -> str:
    """A PEM *header* followed by random text: ccxt picks its signing path from the header
    alone (RSA/Ed25519 for Binance, ES256 for Coinbase), and never sees real key material."""
    return "-----BEGIN " + kind + "PRIVATE KEY-----" + f"kb-transit-{token}"


def stand_in(scheme: Scheme) -> str:
    """A random secret of the shape ccxt's sign() expects for `scheme` (never a real key)."""
    token = secrets.token_hex(24)
    if scheme == "hmac":
        # Not 88 characters and no trailing "=": Coinbase would take it for a CDP key.
        return f"kb-transit-{token}"
    if scheme in ("hmac-b64", "cdp-ed25519"):
        return base64.b64encode(secrets.token_bytes(64)).decode()  # 88 characters
    if scheme == "ed25519-pem":
        return _pem_like("", token)  # ccxt: Ed25519 if short
    if scheme == "rsa-pem":
        return _pem_like("", token).ljust(BINANCE_RSA_MIN_LEN, "x")
    return _pem_like("EC ", token)  # cdp-es256


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class _Primitives:
    """The replacements installed on one ccxt object (see the module docstring)."""

    def __init__(self, exchange: Any, signer: TransitSigner, scheme: Scheme, secret: str) -> None:
        self.exchange = exchange
        self.signer = signer
        self.scheme = scheme
        base = type(exchange)
        self.local_hmac, self.local_rsa = base.hmac, base.rsa
        self.local_eddsa, self.local_jwt = base.eddsa, base.jwt
        if scheme == "hmac-b64":
            self.hmac_key = base64.b64decode(secret)
        else:
            self.hmac_key = secret.encode()
        self.secret = secret.encode()
        # cdp-ed25519: ccxt hands jwt() the first 32 bytes of the decoded secret (a seed).
        self.jwt_key = base64.b64decode(secret)[:32] if scheme == "cdp-ed25519" else self.secret

    def hmac(
        self, request: Any, secret: Any, algorithm: Any = hashlib.sha256, digest: str = "hex"
    ) -> Any:
        if self.scheme not in ("hmac", "hmac-b64") or _as_bytes(secret) != self.hmac_key:
            return self.local_hmac(request, secret, algorithm, digest)
        label = algorithm if isinstance(algorithm, str) else algorithm().name
        name = _TRANSIT_HASH.get(label)
        if name is None:
            raise SigningUnavailable(f"Transit offers no HMAC-{label.upper()}")
        raw = self.signer.hmac(_as_bytes(request), name)
        if digest == "hex":
            return self.exchange.binary_to_base16(raw)
        if digest == "base64":
            return self.exchange.binary_to_base64(raw)
        return raw

    def rsa(
        self, request: Any, secret: Any, alg: str = "sha256", padding_mode: str = "pkcs1"
    ) -> Any:
        if self.scheme != "rsa-pem" or _as_bytes(secret) != self.secret:
            return self.local_rsa(request, secret, alg, padding_mode)
        params: dict[str, Any] = {"signature_algorithm": "pkcs1v15"}
        if padding_mode == "pss":  # ccxt: MGF1 with the same hash, salt = digest length
            params = {"signature_algorithm": "pss", "salt_length": "hash"}
        raw = self.signer.sign(_as_bytes(request), f"/{_CCXT_ALG[alg]}", **params)
        return self.exchange.binary_to_base64(raw)

    def eddsa(
        self, request: Any, secret: Any, curve: str = "ed25519", url_encode: bool = False
    ) -> Any:
        if self.scheme != "ed25519-pem" or _as_bytes(secret) != self.secret:
            return self.local_eddsa(request, secret, curve, url_encode)
        raw = self.signer.sign(_as_bytes(request))
        if url_encode:
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return self.exchange.binary_to_base64(raw)

    def jwt(
        self,
        request: Any,
        secret: Any,
        algorithm: str = "sha256",
        is_rsa: bool = False,
        opts: dict[str, Any] | None = None,
    ) -> Any:
        opts = opts or {}
        alg = opts.get("alg")
        ours = self.scheme in ("cdp-es256", "cdp-ed25519") and _as_bytes(secret) == self.jwt_key
        if not ours or alg not in ("ES256", "EdDSA"):
            return self.local_jwt(request, secret, algorithm, is_rsa, opts)
        # ccxt's jwt() writes header and claims; a throwaway key of the same kind lets it
        # run unchanged, and only its signature is replaced by Vault's.
        token = self.local_jwt(request, _throwaway(alg), algorithm, is_rsa, opts)
        signing_input = token.rsplit(".", 1)[0]
        if alg == "ES256":
            raw = self.signer.sign(signing_input.encode(), "/sha2-256", marshaling_algorithm="jws")
        else:
            raw = self.signer.sign(signing_input.encode())
        return signing_input + "." + self.exchange.urlencode_base64(raw)


_THROWAWAY: dict[str, bytes] = {}


def _throwaway(alg: str) -> bytes:
    """A local key only for ccxt's jwt() to run; its signature is always discarded."""
    if alg not in _THROWAWAY:
        if alg == "ES256":
            _THROWAWAY[alg] = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        else:
            _THROWAWAY[alg] = secrets.token_bytes(32)
    return _THROWAWAY[alg]


_PRESIGNED: contextvars.ContextVar[tuple[tuple[Any, ...], Any] | None] = contextvars.ContextVar(
    "keybroker_presigned", default=None
)


def _sign_key(path: Any, api: Any, method: Any, params: Any) -> tuple[Any, ...]:
    return (repr(path), repr(api), repr(method), repr(params))


def install(exchange: Any, signer: TransitSigner, scheme: Scheme, secret: str) -> Any:
    """Make `exchange` (sync or async ccxt, configured with `secret` = stand_in(scheme))
    sign through `signer`. Returns the same object."""
    primitives = _Primitives(exchange, signer, scheme, secret)
    exchange.hmac = primitives.hmac
    exchange.rsa = primitives.rsa
    exchange.eddsa = primitives.eddsa
    exchange.jwt = primitives.jwt
    if asyncio.iscoroutinefunction(getattr(exchange, "fetch2", None)):
        _install_presigning(exchange)
    return exchange


def _install_presigning(exchange: Any) -> None:
    own_sign, own_fetch2 = exchange.sign, exchange.fetch2

    def sign(
        path: Any, api: Any = "public", method: Any = "GET", params: Any = None, *rest: Any
    ) -> Any:
        ready = _PRESIGNED.get()
        if ready is not None and ready[0] == _sign_key(path, api, method, params or {}):
            _PRESIGNED.set(None)  # one use: a retry signs again (with a fresh nonce)
            return ready[1]
        return own_sign(path, api, method, {} if params is None else params, *rest)

    async def fetch2(
        path: Any, api: Any = "public", method: Any = "GET", params: Any = None, *rest: Any
    ) -> Any:
        params = {} if params is None else params
        presigned = await asyncio.to_thread(own_sign, path, api, method, params)
        token = _PRESIGNED.set((_sign_key(path, api, method, params), presigned))
        try:
            return await own_fetch2(path, api, method, params, *rest)
        finally:
            _PRESIGNED.reset(token)

    exchange.sign = sign
    exchange.fetch2 = fetch2


def build_exchange(
    key: Any,
    transit_call: Callable[[str, str, dict[str, Any]], dict[str, Any]],
    *,
    asynchronous: bool = False,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """The ccxt object of `key` (a broker.client.ExchangeKey): Transit-signed when the key
    is under `transit` custody, else holding the secret from KV."""
    import ccxt
    import ccxt.async_support

    module: Any = ccxt.async_support if asynchronous else ccxt
    options: dict[str, Any] = {**(config or {}), "apiKey": key.api_key}
    if key.passphrase:
        options["password"] = key.passphrase
    if not key.transit:
        return getattr(module, key.exchange)({**options, "secret": key.secret})
    scheme = key.transit["scheme"]
    if scheme not in SCHEMES:
        raise SigningUnavailable(f"unknown signing scheme {scheme!r}")
    secret = stand_in(scheme)
    mount = key.transit["transit_mount"]
    signer = TransitSigner(
        lambda path, body: transit_call(mount, path, body),
        key.transit["transit_key"],
        int(key.transit["transit_version"]),
    )
    return install(
        getattr(module, key.exchange)({**options, "secret": secret}), signer, scheme, secret
    )
