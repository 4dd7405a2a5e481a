"""The site backend's own settings (`KEYBROKER_SITE_*`); the key rules it shows come from
the broker's settings (broker/config.py), read from the same environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_LISTEN = "127.0.0.1:8090"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class SiteSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYBROKER_SITE_", extra="ignore")

    broker_url: str = "http://127.0.0.1:8080"
    # A Vault token with policy keybroker-intake; used only server-side.
    intake_token: SecretStr | None = None
    listen: str = DEFAULT_LISTEN
    # Host names the page answers to (others get 400): a DNS-rebinding page cannot reach
    # a loopback site through its own name. Add the public name when serving beyond it.
    allowed_hosts: Annotated[list[str], NoDecode, BeforeValidator(_split_csv)] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"]
    )
    # Bound on one call to the broker (an exchange check may take CHECK_TIMEOUT).
    broker_timeout: float = 30.0

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)
