"""Sandbox API keys: what a key may do, where it may come from, and how it signs.

A `SandboxKey` is the sandbox's record of one key as the exchange would hold it: the
rights granted when the user created it, its IP whitelist, its expiry and its signing
material. Every exchange module renders these same facts in its own vocabulary
(docs/facts/exchanges.md, summary table), so one key set serves all twelve exchanges.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from broker.config import DEFAULT_EXCHANGES

# The exchanges the broker supports, declared once (broker/config.py).
EXCHANGES: tuple[str, ...] = DEFAULT_EXCHANGES
# Exchanges whose keys carry a passphrase chosen by the user (docs/facts/exchanges.md).
PASSPHRASE_EXCHANGES = frozenset({"okx", "kucoin", "bitget"})

# The robot egress address used in tests and dev mode, and a second "office" address.
ROBOT_EGRESS_IP = "203.0.113.10"
OTHER_IP = "198.51.100.7"

KeyType = Literal["hmac", "rsa", "ed25519", "cdp"]
RIGHTS = ("read", "spot_trade", "margin", "futures", "withdraw", "transfer")
# Optional `new_key(..., cdp_alg="EdDSA")` makes an Ed25519 CDP key instead of ES256.


class SandboxKeyError(ValueError):
    """A sandbox key definition is malformed; the message names the field, never a secret."""


@dataclass(frozen=True)
class SandboxKey:
    """One API key as the exchange holds it. `repr()` never shows secret or passphrase."""

    exchange: str
    label: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)
    read: bool = True
    spot_trade: bool = False
    margin: bool = False
    futures: bool = False
    withdraw: bool = False
    transfer: bool = False
    ip_whitelist: tuple[str, ...] | None = None  # None: unrestricted
    expires_at: datetime | None = None
    created_at: datetime = field(
        default_factory=lambda: datetime(2025, 1, 15, 8, 0, tzinfo=UTC), repr=False
    )
    key_type: KeyType = "hmac"
    key_version: int = 3  # KuCoin API key version (1, 2 or 3)
    uid: int = 0  # the account id (HTX uid, Gate user_id, Bybit userID, ...)
    nonce_window: int = 0  # Kraken: tolerated out-of-order nonce distance

    def __post_init__(self) -> None:
        if self.exchange not in EXCHANGES:
            raise SandboxKeyError(f"exchange {self.exchange!r} is not sandboxed")
        for name in ("label", "api_key", "secret"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise SandboxKeyError(f"{self.exchange}: {name} must be a non-empty string")
        where = f"{self.exchange}/{self.label}"
        for name in RIGHTS:
            if not isinstance(getattr(self, name), bool):
                raise SandboxKeyError(f"{where}: {name} must be true or false")
        if self.key_type not in ("hmac", "rsa", "ed25519", "cdp"):
            raise SandboxKeyError(f"{where}: key_type must be hmac, rsa, ed25519 or cdp")
        for name in ("uid", "nonce_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SandboxKeyError(f"{where}: {name} must be a non-negative integer")
        if (self.exchange in PASSPHRASE_EXCHANGES) != (self.passphrase is not None):
            need = "needs" if self.exchange in PASSPHRASE_EXCHANGES else "has no"
            raise SandboxKeyError(
                f"{self.exchange}/{self.label}: {self.exchange} {need} passphrase"
            )
        if self.key_version not in (1, 2, 3):
            raise SandboxKeyError(f"{self.exchange}/{self.label}: key_version must be 1, 2 or 3")
        if self.ip_whitelist is not None:
            if isinstance(self.ip_whitelist, str) or not all(
                isinstance(ip, str) for ip in self.ip_whitelist
            ):
                raise SandboxKeyError(f"{where}: ip_whitelist must be a list of IPs, or null")
            object.__setattr__(self, "ip_whitelist", tuple(self.ip_whitelist))
        for moment in ("expires_at", "created_at"):
            value = getattr(self, moment)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise SandboxKeyError(f"{where}: {moment} must be a timezone-aware datetime")

    @property
    def can_write(self) -> bool:
        """Any right beyond reading (exchanges with a single read-only flag use this)."""
        return self.spot_trade or self.margin or self.futures or self.withdraw or self.transfer

    def allows_ip(self, ip: str) -> bool:
        """Whitelist entries are addresses, or CIDR ranges where an exchange takes them."""
        if self.ip_whitelist is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        for entry in self.ip_whitelist:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a malformed entry admits nobody
        return False

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def credentials(self) -> dict[str, str]:
        """The client's view (docs/contracts.md §5/§6): api_key, secret and passphrase if any."""
        out = {"api_key": self.api_key, "secret": self.secret}
        if self.passphrase is not None:
            out["passphrase"] = self.passphrase
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, secrets included, for `--keys FILE` round trips."""
        data = asdict(self)
        data["ip_whitelist"] = list(self.ip_whitelist) if self.ip_whitelist is not None else None
        for moment in ("expires_at", "created_at"):
            data[moment] = data[moment].isoformat() if data[moment] else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxKey:
        if not isinstance(data, dict):
            raise SandboxKeyError("each key must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SandboxKeyError(f"unknown key fields: {sorted(unknown)}")
        values = dict(data)
        for moment in ("expires_at", "created_at"):
            if values.get(moment):
                try:
                    values[moment] = datetime.fromisoformat(values[moment])
                except (TypeError, ValueError):
                    raise SandboxKeyError(f"{moment} is not an ISO 8601 time") from None
            elif moment == "created_at":
                values.pop(moment, None)
            else:
                values[moment] = None
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise SandboxKeyError(f"incomplete key definition: {exc}") from None


# --- key material -----------------------------------------------------------------------


def _api_key(exchange: str) -> str:
    if exchange == "htx":
        return str(uuid.uuid4())  # HTX access keys look like UUIDs
    if exchange == "deribit":
        return secrets.token_urlsafe(6)[:8]  # Deribit client ids are short
    if exchange == "kraken":
        return base64.b64encode(secrets.token_bytes(42)).decode()
    return secrets.token_hex(16)


def _hmac_secret(exchange: str) -> str:
    if exchange == "kraken":
        return base64.b64encode(secrets.token_bytes(64)).decode()  # Kraken secrets are base64
    # 32 hex characters: never 88 long nor ending in "=", so ccxt's coinbase keeps HMAC.
    return secrets.token_hex(16)


def _pem(private_key: Any, fmt: serialization.PrivateFormat) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


def rsa_secret() -> str:
    """A Binance or Bybit RSA key as ccxt expects it: a PEM private key (> 120 characters)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pem(key, serialization.PrivateFormat.PKCS8)


def ed25519_secret() -> str:
    """A Binance Ed25519 key: a short PKCS#8 PEM private key."""
    return _pem(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8)


def cdp_es256_secret() -> str:
    """A Coinbase CDP key secret: an EC P-256 private key in SEC1 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _pem(key, serialization.PrivateFormat.TraditionalOpenSSL)


def cdp_ed25519_secret() -> str:
    """A Coinbase CDP Ed25519 key secret: base64 of seed + public key (88 characters)."""
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(seed + public).decode()


def cdp_key_name() -> str:
    return f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"


def new_key(exchange: str, label: str, **fields: Any) -> SandboxKey:
    """A key with fresh random credentials for `exchange` and the given rights/fields."""
    rights = dict(fields)
    key_type = rights.get("key_type", "hmac")
    if key_type == "rsa":
        secret = rsa_secret()
    elif key_type == "ed25519":
        secret = ed25519_secret()
    elif key_type == "cdp":
        eddsa = rights.pop("cdp_alg", "ES256") == "EdDSA"
        secret = cdp_ed25519_secret() if eddsa else cdp_es256_secret()
    else:
        secret = _hmac_secret(exchange)
    api_key = cdp_key_name() if key_type == "cdp" else _api_key(exchange)
    passphrase = secrets.token_urlsafe(12) if exchange in PASSPHRASE_EXCHANGES else None
    uid = rights.pop("uid", None) or 10_000_000 + secrets.randbelow(89_999_999)
    return SandboxKey(
        exchange=exchange,
        label=label,
        api_key=api_key,
        secret=secret,
        passphrase=passphrase,
        uid=uid,
        **rights,
    )


def default_keys(now: datetime | None = None) -> list[SandboxKey]:
    """The default key set, on every exchange (labels listed in docs/sandbox.md)."""
    now = now or datetime.now(UTC)
    egress = (ROBOT_EGRESS_IP,)
    both = (ROBOT_EGRESS_IP, OTHER_IP)
    trade = {"read": True, "spot_trade": True}
    specs: dict[str, dict[str, Any]] = {
        "read_only": {"read": True, "ip_whitelist": egress},
        "read_only_no_whitelist": {"read": True, "ip_whitelist": None},
        "trade_whitelisted": {**trade, "ip_whitelist": both},
        "withdraw_enabled": {**trade, "withdraw": True, "ip_whitelist": egress},
        "transfer_enabled": {**trade, "transfer": True, "ip_whitelist": egress},
        "no_whitelist": {**trade, "ip_whitelist": None},
        "futures_enabled": {**trade, "futures": True, "ip_whitelist": egress},
        "margin_enabled": {**trade, "margin": True, "ip_whitelist": egress},
        "read_disabled": {"read": False, "spot_trade": True, "ip_whitelist": egress},
        # The exchange refuses the caller's IP: the whitelist lacks the robot egress.
        "ip_refused": {**trade, "ip_whitelist": (OTHER_IP,)},
        "expired": {**trade, "ip_whitelist": egress, "expires_at": now - timedelta(days=1)},
        "expiring_soon": {**trade, "ip_whitelist": egress, "expires_at": now + timedelta(days=7)},
    }
    keys: list[SandboxKey] = []
    for exchange in EXCHANGES:
        for label, spec in specs.items():
            keys.append(new_key(exchange, label, **spec))
    keys.append(new_key("kucoin", "key_v1", **trade, ip_whitelist=both, key_version=1))
    keys.append(new_key("kucoin", "key_v2", **trade, ip_whitelist=both, key_version=2))
    keys.append(new_key("binance", "rsa", **trade, ip_whitelist=egress, key_type="rsa"))
    keys.append(new_key("binance", "ed25519", **trade, ip_whitelist=egress, key_type="ed25519"))
    keys.append(new_key("bybit", "rsa", **trade, ip_whitelist=egress, key_type="rsa"))
    keys.append(new_key("coinbase", "cdp", **trade, key_type="cdp"))
    keys.append(new_key("coinbase", "cdp_ed25519", **trade, key_type="cdp", cdp_alg="EdDSA"))
    return keys


def load_keys_file(path: Path) -> list[SandboxKey]:
    """Keys from a JSON file holding a list of key objects (see `SandboxKey.to_json`)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SandboxKeyError(f"cannot read keys file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SandboxKeyError(f"{path}: not JSON (line {exc.lineno})") from None
    if not isinstance(data, list):
        raise SandboxKeyError(f"{path}: expected a JSON list of keys")
    return [SandboxKey.from_json(item) for item in data]


def with_rights(key: SandboxKey, **changes: Any) -> SandboxKey:
    """A copy of `key` with some fields changed (tests use it to derive variants)."""
    return replace(key, **changes)
