"""Typed stack configuration for the keybroker Pulumi program.

Every key lives in the `keybroker:` namespace and is documented in Pulumi.<stack>.yaml
and docs/deploy.md. `parse_config` is pure (a mapping of raw strings in, a frozen
StackConfig out) so it is tested without Pulumi; `load_config` reads the real stack
config. Errors name the key and what it expects, never the value (a value typed into
the wrong key may be a secret).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from broker.durations import parse_duration
from broker.names import DEFAULT_MOUNT, SITE_TOKEN_MAX_TTL_S, SITE_TOKEN_TTL_S

NAMESPACE = "keybroker"
Environment = Literal["dev", "prod"]

# Only these keys are secrets; they are read with get_secret so they stay wrapped Outputs.
SECRET_KEYS: tuple[str, ...] = ("auditHmacKey",)

# `repo[:tag]@sha256:<64 hex>`: the tag is informative, the digest decides what runs.
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
LOOPBACK = ("127.0.0.1", "::1")
# docs/contracts.md §2: site tokens have an explicit max TTL of 15m by default; the stack
# refuses anything beyond this hard ceiling.
SITE_TOKEN_MAX_TTL_CEILING = 3600.0
KMS_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class ConfigError(ValueError):
    """A stack configuration value is missing or malformed."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"config {NAMESPACE}:{key}: expected {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from configuration, validated."""

    environment: Environment
    # Vault
    vault_nodes: int
    vault_image: str
    vault_port: int
    disable_mlock: bool
    vault_memory_mb: int
    tls_validity_days: int
    # Network exposure
    publish_address: str
    broker_port: int
    # AWS (KMS auto-unseal, Secrets Manager)
    aws_region: str
    aws_endpoint_url: str | None
    aws_credentials_file: str | None
    kms_key_arn: str | None
    kms_deletion_window_days: int
    secrets_prefix: str
    secrets_recovery_window_days: int
    recovery_shares: int
    recovery_threshold: int
    revoke_root_token: bool
    # Vault layout (broker/layout.py build_layout arguments)
    kv_mount: str
    site_token_ttl: float
    site_token_max_ttl: float
    site_token_cidrs: tuple[str, ...]
    robot_cidrs: tuple[str, ...]
    # Broker
    exchanges: tuple[str, ...]
    robot_egress_ips: tuple[str, ...]
    site_egress_ips: tuple[str, ...]
    allow_futures: bool
    broker_memory_mb: int
    broker_cpus: float
    secret_id_wrap_ttl: float
    broker_secret_id_rotation: str
    # Secret (wrapped Output) values; None when not configured.
    audit_hmac_key: pulumi.Output[str] | None = None

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class _Reader:
    """Typed accessors over raw string values; each error names its key."""

    def __init__(self, values: Mapping[str, str | None]) -> None:
        self._values = values

    def raw(self, key: str) -> str | None:
        value = self._values.get(key)
        if value is None or str(value).strip() == "":
            return None
        return str(value).strip()

    def required(self, key: str, expected: str) -> str:
        value = self.raw(key)
        if value is None:
            raise ConfigError(key, f"{expected} (the key is required)")
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        return default if value is None else value

    def integer(self, key: str, default: int | None, lo: int, hi: int) -> int:
        value = self.raw(key)
        expected = f"an integer from {lo} to {hi}"
        if value is None:
            if default is None:
                raise ConfigError(key, f"{expected} (the key is required)")
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(key, expected) from None
        if not lo <= number <= hi:
            raise ConfigError(key, expected)
        return number

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(key, f"a number from {lo:g} to {hi:g}") from None
        if not lo <= number <= hi:
            raise ConfigError(key, f"a number from {lo:g} to {hi:g}")
        return number

    def boolean(self, key: str, default: bool | None) -> bool:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise ConfigError(key, "true or false (the key is required: set it explicitly)")
            return default
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(key, "true or false")

    def duration(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ConfigError(key, "a duration such as 90s, 5m or 1h") from None
        if seconds <= 0:
            raise ConfigError(key, "a positive duration such as 90s, 5m or 1h")
        return seconds

    def string_list(self, key: str) -> tuple[str, ...]:
        """A YAML/JSON list of strings, or a comma-separated string."""
        value = self._values.get(key)
        if value is None or value == "":
            return ()
        items: Any = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    raise ConfigError(key, "a list of strings") from None
            else:
                items = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(key, "a list of strings")
        return tuple(i.strip() for i in items if i.strip())

    def cidrs(self, key: str) -> tuple[str, ...]:
        items = self.string_list(key)
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(key, "a list of IP addresses or CIDR blocks") from None
        return items


def parse_config(
    values: Mapping[str, str | None],
    *,
    stack: str,
    audit_hmac_key: pulumi.Output[str] | None = None,
) -> StackConfig:
    """Validate raw config values (keys without the namespace) into a StackConfig."""
    r = _Reader(values)

    environment = r.required("environment", "dev or prod")
    if environment not in ("dev", "prod"):
        raise ConfigError("environment", "dev or prod")
    prod = environment == "prod"

    vault_nodes = r.integer("vaultNodes", 3 if prod else 1, 1, 3)
    if vault_nodes not in (1, 3):
        raise ConfigError("vaultNodes", "1 (single node) or 3 (Raft HA cluster)")

    vault_image = r.required("vaultImage", "an image reference pinned by digest (repo@sha256:...)")
    if not DIGEST_REF.match(vault_image):
        raise ConfigError(
            "vaultImage", "an image reference pinned by digest (repo@sha256:<64 hex>)"
        )

    publish_address = r.string("publishAddress", "127.0.0.1") or "127.0.0.1"
    try:
        ipaddress.ip_address(publish_address)
    except ValueError:
        raise ConfigError("publishAddress", "an IP address such as 127.0.0.1") from None
    if not prod and publish_address not in LOOPBACK:
        raise ConfigError("publishAddress", "127.0.0.1 or ::1 in the dev environment")

    aws_region = r.required("awsRegion", "an AWS region such as eu-west-1")
    if not AWS_REGION.match(aws_region):
        raise ConfigError("awsRegion", "an AWS region such as eu-west-1")
    endpoint = r.string("awsEndpointUrl")
    if endpoint is not None and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ConfigError("awsEndpointUrl", "an http(s) URL")
    kms_key_arn = r.string("kmsKeyArn")
    if kms_key_arn is not None and not KMS_ARN.match(kms_key_arn):
        raise ConfigError("kmsKeyArn", "a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")

    secrets_prefix = r.string("secretsPrefix", f"keybroker/{stack}") or f"keybroker/{stack}"
    if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,256}", secrets_prefix):
        raise ConfigError(
            "secretsPrefix", "a Secrets Manager name prefix (letters, digits, /_+=.@-)"
        )

    recovery_shares = r.integer("recoveryShares", 5, 1, 10)
    recovery_threshold = r.integer("recoveryThreshold", 3, 1, 10)
    if recovery_threshold > recovery_shares:
        raise ConfigError("recoveryThreshold", "at most recoveryShares")

    kv_mount = r.string("kvMount", DEFAULT_MOUNT) or DEFAULT_MOUNT
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", kv_mount):
        raise ConfigError("kvMount", "a single path segment such as exchange-keys")

    site_token_ttl = r.duration("siteTokenTtl", SITE_TOKEN_TTL_S)
    site_token_max_ttl = r.duration("siteTokenMaxTtl", SITE_TOKEN_MAX_TTL_S)
    if site_token_max_ttl > SITE_TOKEN_MAX_TTL_CEILING:
        raise ConfigError(
            "siteTokenMaxTtl", "a duration of at most 1h (site tokens are short-lived)"
        )
    if site_token_ttl > site_token_max_ttl:
        raise ConfigError("siteTokenTtl", "a duration no longer than siteTokenMaxTtl")

    site_token_cidrs = r.cidrs("siteTokenCidrs")
    if not site_token_cidrs:
        raise ConfigError("siteTokenCidrs", "a non-empty list of CIDRs the site calls Vault from")
    robot_cidrs = r.cidrs("robotCidrs")
    if prod and not robot_cidrs:
        raise ConfigError("robotCidrs", "a non-empty list of CIDRs the robot logs in from (prod)")
    for key, items in (("siteTokenCidrs", site_token_cidrs), ("robotCidrs", robot_cidrs)):
        if any(ipaddress.ip_network(i, strict=False).prefixlen == 0 for i in items):
            raise ConfigError(key, "CIDRs narrower than 0.0.0.0/0 or ::/0")

    return StackConfig(
        environment=environment,  # type: ignore[arg-type]  # checked above
        vault_nodes=vault_nodes,
        vault_image=vault_image,
        vault_port=r.integer("vaultPort", 8200, 1024, 65533),
        disable_mlock=r.boolean("disableMlock", None),
        vault_memory_mb=r.integer("vaultMemoryMb", 512, 128, 65536),
        tls_validity_days=r.integer("tlsValidityDays", 365, 1, 825),
        publish_address=publish_address,
        broker_port=r.integer("brokerPort", 8080, 1024, 65535),
        aws_region=aws_region,
        aws_endpoint_url=endpoint,
        aws_credentials_file=r.string("awsCredentialsFile"),
        kms_key_arn=kms_key_arn,
        kms_deletion_window_days=r.integer("kmsDeletionWindowDays", 30, 7, 30),
        secrets_prefix=secrets_prefix,
        secrets_recovery_window_days=r.integer(
            "secretsRecoveryWindowDays", 30 if prod else 0, 0, 30
        ),
        recovery_shares=recovery_shares,
        recovery_threshold=recovery_threshold,
        revoke_root_token=r.boolean("revokeRootToken", prod),
        kv_mount=kv_mount,
        site_token_ttl=site_token_ttl,
        site_token_max_ttl=site_token_max_ttl,
        site_token_cidrs=site_token_cidrs,
        robot_cidrs=robot_cidrs,
        exchanges=r.string_list("exchanges"),
        robot_egress_ips=r.cidrs("robotEgressIps"),
        site_egress_ips=r.cidrs("siteEgressIps"),
        allow_futures=r.boolean("allowFutures", False),
        broker_memory_mb=r.integer("brokerMemoryMb", 256, 64, 16384),
        broker_cpus=r.number("brokerCpus", 1.0, 0.1, 16.0),
        secret_id_wrap_ttl=r.duration("secretIdWrapTtl", 600.0),
        broker_secret_id_rotation=r.string("brokerSecretIdRotation", "1") or "1",
        audit_hmac_key=audit_hmac_key,
    )


# Keys read as plain values; kept in one list so the loader and the docs agree.
PLAIN_KEYS: tuple[str, ...] = (
    "environment",
    "vaultNodes",
    "vaultImage",
    "vaultPort",
    "disableMlock",
    "vaultMemoryMb",
    "tlsValidityDays",
    "publishAddress",
    "brokerPort",
    "awsRegion",
    "awsEndpointUrl",
    "awsCredentialsFile",
    "kmsKeyArn",
    "kmsDeletionWindowDays",
    "secretsPrefix",
    "secretsRecoveryWindowDays",
    "recoveryShares",
    "recoveryThreshold",
    "revokeRootToken",
    "kvMount",
    "siteTokenTtl",
    "siteTokenMaxTtl",
    "siteTokenCidrs",
    "robotCidrs",
    "exchanges",
    "robotEgressIps",
    "siteEgressIps",
    "allowFutures",
    "brokerMemoryMb",
    "brokerCpus",
    "secretIdWrapTtl",
    "brokerSecretIdRotation",
)


def load_config() -> StackConfig:
    """The current stack's configuration (inside a Pulumi program or under mocks)."""
    cfg = pulumi.Config(NAMESPACE)
    for key in SECRET_KEYS:
        # A secret typed with `pulumi config set` (no --secret) would land in plain text
        # in Pulumi.<stack>.yaml: refuse it.
        if cfg.get(key) is not None and not pulumi.runtime.is_config_secret(f"{NAMESPACE}:{key}"):
            raise ConfigError(key, "a secret value (set it with `pulumi config set --secret`)")
    values = {key: cfg.get(key) for key in PLAIN_KEYS}
    return parse_config(
        values,
        stack=pulumi.get_stack(),
        audit_hmac_key=cfg.get_secret("auditHmacKey"),
    )
