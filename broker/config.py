"""Broker configuration: environment variables with the `KEYBROKER_` prefix (docs/contracts.md §7).

A config file (YAML or JSON) may be given with `KEYBROKER_CONFIG_FILE`; environment
variables override it. Durations accept Vault's syntax (`90s`, `5m`, `1h`) or seconds.

Two kinds of address, each with its own setting per caller (site, robot), because behind
NAT or on a private Vault network they differ:
- exchange egress (`*_EXCHANGE_EGRESS_IPS`): the public addresses the exchange sees the
  caller's requests come from; a key's IP whitelist must hold them;
- Vault source networks (`*_VAULT_CIDRS`): where the caller reaches Vault from; site tokens
  and robot AppRole logins are bound to them.
The old `SITE_EGRESS_IPS` / `ROBOT_EGRESS_IPS` meant both at once; they are still read, set
whichever of the pair is not set explicitly, and warn (`DEPRECATED_NAMES`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# format_duration is re-exported for code that still imports it from here.
from broker.durations import format_duration as format_duration
from broker.durations import parse_duration
from broker.names import (
    ACCOUNT_BOUND_REPORTS,
    DEFAULT_MOUNT,
    DEFAULT_SITE_TOKEN_ROLE,
    DEFAULT_TRANSIT_MOUNT,
    HEALTH_STOP_ON,
    ROLES,
    SITE_TOKEN_MAX_TTL_S,
    SITE_TOKEN_TTL_S,
    VERIFY_INTERVAL_S,
)

log = logging.getLogger("keybroker.config")

DEFAULT_EXCHANGES = (
    "binance",
    "okx",
    "bybit",
    "kucoin",
    "gate",
    "bitget",
    "htx",
    "bingx",
    "kraken",
    "mexc",
    "coinbase",
    "deribit",
)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _json_map(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return json.loads(value) if value else {}
    return value


_TRUE = frozenset({"true", "1", "yes", "on", "*", "all"})
_FALSE = frozenset({"false", "0", "no", "off", "", "none"})


def _exchange_set(value: Any) -> Any:
    """`true`/`false`, or a comma list of ccxt ids -> the set of exchanges it names."""
    if isinstance(value, bool):
        return frozenset(DEFAULT_EXCHANGES) if value else frozenset()
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return frozenset(DEFAULT_EXCHANGES)
        if text in _FALSE:
            return frozenset()
        value = _split_csv(text)
    if isinstance(value, list | tuple | set | frozenset):
        unknown = sorted(str(v) for v in value if v not in DEFAULT_EXCHANGES)
        if unknown:
            raise ValueError(
                f"unknown exchange(s) {', '.join(unknown)}: use true, false or ccxt ids "
                f"from {', '.join(DEFAULT_EXCHANGES)}"
            )
        return frozenset(value)
    return value


def _durations(value: Any) -> Any:
    return [parse_duration(item) for item in _split_csv(value)]


Custody = Literal["transit", "kv"]
CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
# A set of exchanges a setting applies to: `true` (all), `false` (none) or `okx,deribit`.
ExchangeSet = Annotated[frozenset[str], NoDecode, BeforeValidator(_exchange_set)]

# Deprecated setting -> the settings it now stands for (module docstring).
DEPRECATED_NAMES: dict[str, tuple[str, str]] = {
    "site_egress_ips": ("site_exchange_egress_ips", "site_vault_cidrs"),
    "robot_egress_ips": ("robot_exchange_egress_ips", "robot_vault_cidrs"),
}
_NETWORK_FIELDS = (
    "site_exchange_egress_ips",
    "site_vault_cidrs",
    "robot_exchange_egress_ips",
    "robot_vault_cidrs",
    *DEPRECATED_NAMES,
)


class Settings(BaseSettings):
    """Everything the broker, `check-key` and dev mode read from the environment."""

    model_config = SettingsConfigDict(env_prefix="KEYBROKER_", extra="ignore")

    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_cacert: Path | None = None
    kv_mount: str = DEFAULT_MOUNT

    exchanges: CsvList = Field(default_factory=lambda: list(DEFAULT_EXCHANGES))
    exchange_urls: Annotated[dict[str, str], NoDecode, BeforeValidator(_json_map)] = Field(
        default_factory=dict
    )
    # Exchange egress: what a key's IP whitelist must hold (see the module docstring).
    robot_exchange_egress_ips: CsvList = Field(default_factory=list)
    site_exchange_egress_ips: CsvList = Field(default_factory=list)
    # Vault source networks: what robot logins and site tokens are bound to.
    robot_vault_cidrs: CsvList = Field(default_factory=list)
    site_vault_cidrs: CsvList = Field(default_factory=list)
    # Deprecated: each sets both of its pair (DEPRECATED_NAMES); read only by `_deprecated`.
    robot_egress_ips: CsvList | None = Field(default=None, exclude=True)
    site_egress_ips: CsvList | None = Field(default=None, exclude=True)
    # `true` (every exchange), `false`, or the ccxt ids where futures rights are accepted.
    allow_futures: ExchangeSet = frozenset()
    require_site_ip_restriction: bool = False
    site_token_ttl: Seconds = SITE_TOKEN_TTL_S
    site_token_max_ttl: Seconds = SITE_TOKEN_MAX_TTL_S
    check_timeout: Seconds = 10.0
    listen: str = "127.0.0.1:8080"

    # Extensions (not in docs/contracts.md §7, compatible additions).
    audit_log: Path | None = None  # JSON lines; stderr when unset
    audit_hmac_key: SecretStr | None = (
        None  # identifies keys in audit lines; random per process when unset
    )
    site_token_role: str = DEFAULT_SITE_TOKEN_ROLE
    caller_cache_ttl: Seconds = 5.0
    # The one address the broker's exchange requests leave from, when known: a successful
    # signed call then proves a whitelist the exchange will not disclose (Binance).
    broker_egress_ip: str | None = None
    # Exchanges where a right the exchange cannot report (MEXC: withdraw, transfer,
    # futures) is accepted with a warning instead of refused as `unverifiable`.
    accept_unverifiable: ExchangeSet = frozenset()
    api_docs: bool = False  # serve Swagger UI (/docs) and ReDoc (/redoc)

    # Write recovery, request limits and rate limits (docs/broker.md, issue 17).
    vault_timeout: Seconds = 10.0  # bound on one Vault request from the broker
    intent_grace: Seconds = 60.0  # a write intent older than this is the reconciler's
    reconcile_interval: Seconds = 15.0
    header_timeout: Seconds = 10.0  # request line and headers must arrive within this
    body_timeout: Seconds = 10.0  # the body (read before authentication) within this
    max_unauthenticated: int = Field(default=256, ge=1)  # connections not yet authenticated
    # Per caller token. One site backend mints every user's site tokens, so generous.
    caller_rate: float = Field(default=100.0, gt=0)  # requests per second
    caller_burst: int = Field(default=1000, ge=1)
    # JSON map ccxt id -> outgoing requests per second (defaults: broker/ratelimit.py).
    exchange_rate_limits: Annotated[dict[str, float], NoDecode, BeforeValidator(_json_map)] = Field(
        default_factory=dict
    )
    exchange_queue_wait: Seconds = 2.0  # longest wait for an exchange slot before 429

    # Custody per role (docs/custody.md): `transit` imports the secret into a Transit key
    # nobody can export and consumers sign through Vault; `kv` stores it for them to read.
    site_custody: Custody = "transit"
    robot_custody: Custody = "transit"
    transit_mount: str = DEFAULT_TRANSIT_MOUNT
    # Under `transit`, a secret Transit cannot hold (size, format) is refused; with this
    # set it is kept under `kv` custody instead.
    custody_fallback_kv: bool = False

    # Key health (docs/key-health.md): how often consumers verify (a key without a
    # verification in twice this is `unverified`), which statuses stop them, webhooks.
    verify_interval: Seconds = VERIFY_INTERVAL_S
    health_stop_on: CsvList = Field(default_factory=lambda: list(HEALTH_STOP_ON))
    # Consumers whose reports need a token bound to the key's account (token metadata).
    account_bound_reports: CsvList = Field(default_factory=lambda: list[str](ACCOUNT_BOUND_REPORTS))
    # How often (+-10%) the status index is resynced from Vault, to see what other broker
    # processes stored; 0 disables it.
    health_resync_interval: Annotated[float, BeforeValidator(parse_duration), Field(ge=0)] = 300.0
    webhook_urls: CsvList = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    webhook_retry_delays: Annotated[list[float], NoDecode, BeforeValidator(_durations)] = Field(
        default_factory=lambda: [1.0, 5.0, 30.0, 120.0, 600.0]
    )
    # A webhook record (docs/key-health.md) older than this is abandoned at start-up
    # instead of resent: a receiver down for a day gets no day-old status changes.
    webhook_max_age: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 86400.0

    @field_validator("health_stop_on")
    @classmethod
    def _stop_on(cls, value: list[str]) -> list[str]:
        from broker.health.status import parse_stop_on  # imports broker.rules -> this module

        return sorted(parse_stop_on(value))

    @field_validator("account_bound_reports")
    @classmethod
    def _bound_roles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"roles must be among {', '.join(ROLES)} (got {', '.join(unknown)})")
        return sorted(set(value))

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^https?://[^/]+", url):
                raise ValueError("webhook URLs must be http(s) URLs")
        return value

    @model_validator(mode="after")
    def _webhook_secret(self) -> Settings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("WEBHOOK_URLS needs WEBHOOK_SECRET (the HMAC key of the signature)")
        return self

    def custody(self, role: str) -> Custody:
        return self.site_custody if role == "site" else self.robot_custody

    @field_validator("kv_mount", "transit_mount")
    @classmethod
    def _mount_name(cls, value: str) -> str:
        value = value.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("must be a single path segment such as exchange-keys")
        return value

    @field_validator(*_NETWORK_FIELDS)
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            ipaddress.ip_network(item, strict=False)  # raises ValueError naming the item
        return value

    @model_validator(mode="after")
    def _deprecated(self) -> Settings:
        for old, new_names in DEPRECATED_NAMES.items():
            value = getattr(self, old)
            if value is None:
                continue
            unset = [name for name in new_names if name not in self.model_fields_set]
            for name in unset:
                setattr(self, name, list(value))
            # A log warning: logging's last-resort handler shows it on stderr even in CLIs
            # that configure no logging, without the source location a Python warning adds.
            log.warning(deprecation_notice(old, unset))
        return self

    @field_validator("broker_egress_ip")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("exchange_urls")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for exchange, url in value.items():
            if not re.match(r"^https?://[^/]+", url):
                raise ValueError(f"{exchange}: {url!r} is not an http(s) base URL")
        return value

    @field_validator("exchange_rate_limits")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for exchange, rate in value.items():
            if not rate > 0:
                raise ValueError(f"{exchange}: the rate must be a positive number per second")
        return value

    @model_validator(mode="after")
    def _ttls(self) -> Settings:
        if self.site_token_ttl > self.site_token_max_ttl:
            raise ValueError("SITE_TOKEN_TTL cannot exceed SITE_TOKEN_MAX_TTL")
        return self

    def egress_for(self, role: str) -> list[str]:
        """The exchange egress a key of this role must have whitelisted."""
        return self.robot_exchange_egress_ips if role == "robot" else self.site_exchange_egress_ips

    def futures_allowed(self, exchange: str) -> bool:
        return exchange in self.allow_futures

    def unverifiable_accepted(self, exchange: str) -> bool:
        return exchange in self.accept_unverifiable

    @cached_property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


def env_name(field: str) -> str:
    return f"KEYBROKER_{field.upper()}"


def deprecation_notice(old: str, applied_to: list[str]) -> str:
    new = " and ".join(env_name(name) for name in DEPRECATED_NAMES[old])
    told = (
        f"; it set {', '.join(env_name(n) for n in applied_to)}"
        if applied_to
        else "; ignored, both are set"
    )
    return (
        f"{env_name(old)} is deprecated: it meant two things, now {new} (what the "
        f"exchange sees, and what Vault binds){told}. Set those instead."
    )


def load_settings(**overrides: Any) -> Settings:
    """Settings from `KEYBROKER_CONFIG_FILE` (if set), then the environment, then overrides.

    Raises ConfigError whose message names the `KEYBROKER_*` key and what it expects.
    """
    from pydantic import ValidationError

    file_values: dict[str, Any] = {}
    config_file = os.environ.get("KEYBROKER_CONFIG_FILE")
    if config_file:
        file_values = _read_config_file(Path(config_file))
    env_keys = {name for name in Settings.model_fields if f"KEYBROKER_{name.upper()}" in os.environ}
    merged = {k: v for k, v in file_values.items() if k not in env_keys} | overrides
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"KEYBROKER_{str(err['loc'][0]).upper() if err['loc'] else 'CONFIG'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"KEYBROKER_CONFIG_FILE: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # Never str(exc): PyYAML quotes the offending line, which may hold a token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"KEYBROKER_CONFIG_FILE: {path} is not valid YAML or JSON{where}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"KEYBROKER_CONFIG_FILE: {path} must hold a mapping")
    return {str(k).lower().removeprefix("keybroker_"): v for k, v in data.items()}
