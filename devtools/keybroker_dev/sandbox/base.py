"""What every exchange module shares: the request it sees, the reply it gives, refusals.

Each exchange module subclasses `ExchangeSim` and supplies three things: how to find
the presented api key (for counting), how to authenticate a request exactly as that
exchange does (string to sign, headers, timestamp window, passphrase), and how that
exchange words each refusal (body shape, code, HTTP status). The common pipeline in
`ExchangeSim.respond` checks, in the order exchanges do: route, credentials and
signature, caller IP against the key's whitelist, key expiry, then endpoint permission.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import Fault, SandboxState


@dataclass(frozen=True)
class SandboxRequest:
    """One exchange request as it reached the sandbox, with the `/<exchange>` prefix removed.

    `path` and `raw_query` are exactly as sent (still percent-encoded): signatures are
    computed over the bytes the client sent, never over a re-encoding of them.
    """

    exchange: str
    method: str
    path: str
    raw_query: str
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    host: str
    client_ip: str
    received_at: float = field(default_factory=time.time)

    @property
    def target(self) -> str:
        """Path plus `?query` as sent: what OKX, KuCoin, Bitget and Deribit sign."""
        return f"{self.path}?{self.raw_query}" if self.raw_query else self.path

    @property
    def text(self) -> str:
        """The body as text; bytes that are not UTF-8 cannot match any signature anyway."""
        return self.body.decode("utf-8", "replace")

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    @property
    def now_ms(self) -> int:
        return int(self.received_at * 1000)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.received_at, UTC)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Reply:
        text = json.dumps(payload, separators=(",", ":"))
        return cls(status, text.encode(), "application/json", headers)

    @classmethod
    def text(cls, text: str, status: int, content_type: str = "text/plain") -> Reply:
        return cls(status, text.encode(), content_type)


class Refusal(StrEnum):
    """Why an exchange refused a request; each module words these its own way."""

    MISSING_CREDENTIALS = "missing_credentials"  # a required auth header/param is absent
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    BAD_PASSPHRASE = "bad_passphrase"
    BAD_TIMESTAMP = "bad_timestamp"  # outside the exchange's window, or malformed
    IP_REFUSED = "ip_refused"
    KEY_EXPIRED = "key_expired"
    NO_PERMISSION = "no_permission"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"


_Rendering = TypeVar("_Rendering")


def without_passphrase(table: dict[Refusal, _Rendering]) -> dict[Refusal, _Rendering]:
    """A refusal table for an exchange with no passphrase: `BAD_PASSPHRASE` (never raised
    there) renders as a bad signature, so that the table stays total all the same."""
    return {**table, Refusal.BAD_PASSPHRASE: table[Refusal.BAD_SIGNATURE]}


class Refused(Exception):
    """Raised inside an exchange module to stop with that exchange's refusal."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


Handler = Callable[[SandboxRequest, SandboxKey, SandboxState], Reply]
PublicHandler = Callable[[SandboxRequest, SandboxState], Reply]


@dataclass(frozen=True)
class Endpoint:
    """A signed endpoint (`handler` gets the authenticated key), or a public one that
    authenticates by itself (`public`, e.g. an OAuth-style token grant)."""

    handler: Handler | None = None
    needs_read: bool = True  # the endpoint's documented permission is a read right
    public: PublicHandler | None = None


class ExchangeSim:
    """One exchange: authentication, endpoints and error rendering."""

    name: str = ""
    endpoints: Mapping[tuple[str, str], Endpoint] = {}

    # --- supplied by each exchange module ----------------------------------------------

    def presented_key(self, request: SandboxRequest) -> str | None:
        raise NotImplementedError

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        """The key that signed this request; raises `Refused` the way the exchange does."""
        raise NotImplementedError

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------

    def known_key(self, state: SandboxState, api_key: str | None) -> SandboxKey:
        """The key the request names, or this exchange's unknown-key refusal."""
        key = state.find_key(self.name, api_key)
        if key is None:
            raise Refused(Refusal.UNKNOWN_KEY)
        return key

    def admit(self, request: SandboxRequest, key: SandboxKey) -> None:
        """Once a key is authenticated: refuse a caller outside its IP whitelist, then an
        expired key (the order exchanges check them in)."""
        if not key.allows_ip(request.client_ip):
            raise Refused(Refusal.IP_REFUSED)
        if key.expired(request.now):
            raise Refused(Refusal.KEY_EXPIRED)

    def route(self, request: SandboxRequest) -> Endpoint | None:
        return self.endpoints.get((request.method, request.path))

    def fault(self, fault: Fault, request: SandboxRequest) -> Reply:
        if fault is Fault.RATE_LIMITED:
            return self.refusal(Refusal.RATE_LIMITED, request)
        if fault is Fault.IP_REFUSED:
            return self.refusal(Refusal.IP_REFUSED, request)
        return self.refusal(Refusal.UNAVAILABLE, request)

    def respond(self, request: SandboxRequest, state: SandboxState) -> Reply:
        endpoint = self.route(request)
        if endpoint is None:
            return self.refusal(Refusal.NOT_FOUND, request)
        try:
            if endpoint.public is not None:
                return endpoint.public(request, state)
            assert endpoint.handler is not None
            key = self.authenticate(request, state)
            self.admit(request, key)
            if endpoint.needs_read and not key.read:
                raise Refused(Refusal.NO_PERMISSION)
            return endpoint.handler(request, key, state)
        except Refused as refused:
            return self.refusal(refused.refusal, request)


# --- signing helpers ----------------------------------------------------------------------


def hmac_digest(secret: str | bytes, message: str | bytes, algorithm: str = "sha256") -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(key, data, getattr(hashlib, algorithm)).digest()


def hmac_hex(secret: str | bytes, message: str | bytes, algorithm: str = "sha256") -> str:
    return hmac_digest(secret, message, algorithm).hex()


def hmac_b64(secret: str | bytes, message: str | bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hmac_digest(secret, message, algorithm)).decode()


def verify_pem_signature(private_pem: str, payload: str, signature_b64: str | None) -> bool:
    """A base64 signature of `payload` under the public half of the key's PEM private key:
    RSA PKCS#1 v1.5 with SHA-256, or Ed25519 (Binance, Bybit RSA keys)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

    if signature_b64 is None:
        return False
    try:
        private = serialization.load_pem_private_key(private_pem.encode(), password=None)
        raw = base64.b64decode(signature_b64, validate=True)
        public = private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(raw, payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(raw, payload.encode())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def same(expected: str, presented: str | None) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def verify(expected: str, presented: str | None, refusal: Refusal = Refusal.BAD_SIGNATURE) -> None:
    """A signature (or passphrase, or secret) must match in constant time, or the
    exchange refuses: a bad signature unless another refusal is named."""
    if not same(expected, presented):
        raise Refused(refusal)


def require(value: str | None) -> str:
    """A header or parameter the exchange requires; its absence is a refusal."""
    if not value:
        raise Refused(Refusal.MISSING_CREDENTIALS)
    return value


def parse_int(value: str | None) -> int:
    try:
        return int(require(value))
    except ValueError:
        raise Refused(Refusal.BAD_TIMESTAMP) from None


def split_signature(raw: str) -> tuple[str, str | None]:
    """`a=1&b=2&signature=xyz` -> (`a=1&b=2`, decoded `xyz`): the signed part of a
    Binance-style parameter string (Binance, MEXC, BingX) and the signature it carries."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = unquote(part[len("signature=") :])
        else:
            kept.append(part)
    return "&".join(kept), signature


def recv_window(value: str | None, default_ms: int, max_ms: int | None = None) -> int:
    """A Binance-style `recvWindow` parameter in ms, the default when absent; outside
    (0, max_ms] it is refused as a bad timestamp."""
    window = parse_int(value or str(default_ms))
    if max_ms is not None and not 0 < window <= max_ms:
        raise Refused(Refusal.BAD_TIMESTAMP)
    return window


def within(now_ms: int, stamp_ms: int, behind_ms: int, ahead_ms: int) -> bool:
    """True when `stamp_ms` is at most `behind_ms` old and `ahead_ms` in the future."""
    return now_ms - behind_ms <= stamp_ms <= now_ms + ahead_ms


def check_window(request: SandboxRequest, stamp_ms: int, behind_ms: int, ahead_ms: int) -> None:
    if not within(request.now_ms, stamp_ms, behind_ms, ahead_ms):
        raise Refused(Refusal.BAD_TIMESTAMP)


def ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
