"""Broker configuration: environment variables with the `KEYBROKER_` prefix (docs/contracts.md §7).

A config file (YAML or JSON) may be given with `KEYBROKER_CONFIG_FILE`; environment
variables override it. Durations accept Vault's syntax (`90s`, `5m`, `1h`) or seconds.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


def parse_duration(value: str | int | float) -> float:
    """Seconds from `300`, `"300"`, `"90s"`, `"5m"`, `"1h"`, `"250ms"`."""
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 5m, 1h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact Vault-style spelling: 300 -> "5m", 90 -> "90s"."""
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _json_map(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return json.loads(value) if value else {}
    return value


CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
Seconds = Annotated[float, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Everything the broker, `check-key` and dev mode read from the environment."""

    model_config = SettingsConfigDict(env_prefix="KEYBROKER_", extra="ignore")

    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_cacert: Path | None = None
    kv_mount: str = "exchange-keys"

    exchanges: CsvList = Field(default_factory=lambda: list(DEFAULT_EXCHANGES))
    exchange_urls: Annotated[dict[str, str], NoDecode, BeforeValidator(_json_map)] = Field(
        default_factory=dict
    )
    robot_egress_ips: CsvList = Field(default_factory=list)
    site_egress_ips: CsvList = Field(default_factory=list)
    allow_futures: bool = False
    require_site_ip_restriction: bool = False
    site_token_ttl: Seconds = 300.0
    site_token_max_ttl: Seconds = 900.0
    check_timeout: Seconds = 10.0
    listen: str = "127.0.0.1:8080"

    # Extensions (not in docs/contracts.md §7, compatible additions).
    audit_log: Path | None = None  # JSON lines; stderr when unset
    audit_hmac_key: SecretStr | None = (
        None  # identifies keys in audit lines; random per process when unset
    )
    site_token_role: str = "keybroker-site"
    caller_cache_ttl: Seconds = 5.0
    # The one address the broker's exchange requests leave from, when known: a successful
    # signed call then proves a whitelist the exchange will not disclose (Binance).
    broker_egress_ip: str | None = None

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

    @field_validator("kv_mount")
    @classmethod
    def _mount_name(cls, value: str) -> str:
        value = value.strip("/")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError("must be a single path segment such as exchange-keys")
        return value

    @field_validator("robot_egress_ips", "site_egress_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # raises ValueError naming the item
        return value

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

    @cached_property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


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
