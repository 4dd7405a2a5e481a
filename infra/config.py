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
from broker.loopback import is_loopback
from broker.names import DEFAULT_MOUNT, SITE_TOKEN_MAX_TTL_S, SITE_TOKEN_TTL_S

NAMESPACE = "keybroker"
Environment = Literal["dev", "prod"]

# Only these keys are secrets; they are read with get_secret so they stay wrapped Outputs.
SECRET_KEYS: tuple[str, ...] = ("auditHmacKey",)

# `repo[:tag]@sha256:<64 hex>`: the tag is informative, the digest decides what runs.
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
# `repo:tag`: resolved to its digest by the registry at deploy time (infra/images.py).
TAG_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
DOCKER_HOST_URL = re.compile(r"^(unix|tcp|ssh)://\S+$")
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
class DockerHost:
    """One Docker engine of the stack. `docker_host` None: the deploying machine's own
    engine (DOCKER_HOST or the local socket). `address`: where the other hosts and the
    deploying machine reach the ports this host publishes."""

    name: str
    address: str
    docker_host: str | None = None


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
    telemetry_retention: float  # prometheus_retention_time, seconds
    # Placement
    docker_hosts: tuple[DockerHost, ...]
    broker_replicas: int
    # Network exposure
    publish_address: str
    broker_port: int
    # AWS (KMS auto-unseal, Secrets Manager)
    aws_region: str
    aws_endpoint_url: str | None
    aws_seal_endpoint_url: str | None  # the KMS endpoint as Vault's containers reach it
    aws_credentials_file: str | None
    seal_uses_instance_role: bool
    seal_migrate_to_shamir: bool
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
    broker_base_image: str | None
    load_balancer: bool
    load_balancer_image: str
    broker_token_period: float
    broker_credential_wrap_ttl: float
    broker_credential_rotation: str
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


def _docker_hosts(r: _Reader, publish_address: str, prod: bool) -> tuple[DockerHost, ...]:
    expected = 'a JSON list of {"name": ..., "address": <IP>, "dockerHost": "ssh://...|tcp://..."}'
    raw = r.raw("dockerHosts")
    if raw is None:
        return (DockerHost(name="local", address=publish_address),)
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError("dockerHosts", expected) from None
    if not isinstance(items, list) or not items:
        raise ConfigError("dockerHosts", expected)
    hosts: list[DockerHost] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError("dockerHosts", expected)
        name, address, url = item.get("name"), item.get("address"), item.get("dockerHost")
        if not HOST_NAME.match(str(name)):
            raise ConfigError("dockerHosts", "host names of lower-case letters, digits and -")
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            raise ConfigError("dockerHosts", f"an IP address for host {name}") from None
        if url is not None and not DOCKER_HOST_URL.match(str(url)):
            raise ConfigError("dockerHosts", f"a unix://, tcp:// or ssh:// dockerHost for {name}")
        hosts.append(DockerHost(name=str(name), address=str(address), docker_host=url))
    if len({h.name for h in hosts}) != len(hosts):
        raise ConfigError("dockerHosts", "distinct host names")
    if len(hosts) > 1 and not prod:
        raise ConfigError("dockerHosts", "a single host in the dev environment")
    if not prod and hosts[0].address not in LOOPBACK:
        raise ConfigError("dockerHosts", "the address 127.0.0.1 or ::1 in the dev environment")
    if len(hosts) > 1 and any(ipaddress.ip_address(h.address).is_loopback for h in hosts):
        raise ConfigError("dockerHosts", "addresses the other hosts can reach (not loopback)")
    return tuple(hosts)


def _loopback_url(url: str) -> bool:
    return is_loopback(re.sub(r"^https?://(\[[^]]+\]|[^:/]+).*$", r"\1", url).strip("[]"))


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

    image_expected = "an image reference repo:tag (resolved to its digest) or repo@sha256:<64 hex>"
    vault_image = r.required("vaultImage", image_expected)
    if not (DIGEST_REF.match(vault_image) or TAG_REF.match(vault_image)):
        raise ConfigError("vaultImage", image_expected)
    broker_base_image = r.string("brokerBaseImage")
    if broker_base_image is not None and not (
        DIGEST_REF.match(broker_base_image) or TAG_REF.match(broker_base_image)
    ):
        raise ConfigError("brokerBaseImage", image_expected)
    load_balancer_image = r.string("loadBalancerImage", "haproxy:3.0") or "haproxy:3.0"
    if not (DIGEST_REF.match(load_balancer_image) or TAG_REF.match(load_balancer_image)):
        raise ConfigError("loadBalancerImage", image_expected)

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
    seal_endpoint = r.string("awsSealEndpointUrl")
    if seal_endpoint is not None and not re.match(r"^https?://[^/\s]+", seal_endpoint):
        raise ConfigError("awsSealEndpointUrl", "an http(s) URL")
    if seal_endpoint is None and endpoint is not None and _loopback_url(endpoint):
        # 127.0.0.1 inside a Vault container is the container itself.
        raise ConfigError(
            "awsSealEndpointUrl",
            "the KMS endpoint as Vault's containers reach it (awsEndpointUrl is a loopback"
            " address, which inside a container is the container itself)",
        )
    if seal_endpoint is not None and _loopback_url(seal_endpoint):
        raise ConfigError(
            "awsSealEndpointUrl", "an address Vault's containers reach (not loopback)"
        )
    credentials_file = r.string("awsCredentialsFile")
    instance_role = r.boolean("sealUsesInstanceRole", False)
    if credentials_file is None and not instance_role:
        # Without either, Vault's awskms seal finds no credentials and Vault exits.
        raise ConfigError(
            "awsCredentialsFile",
            "the path of an AWS shared-credentials file for Vault's seal, or"
            " keybroker:sealUsesInstanceRole true on hosts with an instance role",
        )
    if credentials_file is not None and instance_role:
        raise ConfigError("sealUsesInstanceRole", "false when awsCredentialsFile is set")
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

    docker_hosts = _docker_hosts(r, publish_address, prod)
    broker_replicas = r.integer("brokerReplicas", 2 if prod else 1, 1, 16)

    return StackConfig(
        environment=environment,  # type: ignore[arg-type]  # checked above
        vault_nodes=vault_nodes,
        vault_image=vault_image,
        vault_port=r.integer("vaultPort", 8200, 1024, 65533),
        disable_mlock=r.boolean("disableMlock", None),
        vault_memory_mb=r.integer("vaultMemoryMb", 512, 128, 65536),
        tls_validity_days=r.integer("tlsValidityDays", 365, 1, 825),
        telemetry_retention=r.duration("vaultTelemetryRetention", 24 * 3600.0),
        docker_hosts=docker_hosts,
        broker_replicas=broker_replicas,
        publish_address=publish_address,
        broker_port=r.integer("brokerPort", 8080, 1024, 65535),
        aws_region=aws_region,
        aws_endpoint_url=endpoint,
        aws_seal_endpoint_url=seal_endpoint or endpoint,
        aws_credentials_file=credentials_file,
        seal_uses_instance_role=instance_role,
        seal_migrate_to_shamir=r.boolean("sealMigrateToShamir", False),
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
        broker_base_image=broker_base_image,
        load_balancer=r.boolean("loadBalancer", True),
        load_balancer_image=load_balancer_image,
        broker_token_period=_token_period(r),
        broker_credential_wrap_ttl=r.duration("brokerCredentialWrapTtl", 600.0),
        broker_credential_rotation=r.string("brokerCredentialRotation", "1") or "1",
        audit_hmac_key=audit_hmac_key,
    )


def _token_period(r: _Reader) -> float:
    period = r.duration("brokerTokenPeriod", 24 * 3600.0)
    if not 3600 <= period <= 32 * 24 * 3600:
        raise ConfigError("brokerTokenPeriod", "a duration from 1h to 768h")
    return period


# Keys read as plain values; kept in one list so the loader and the docs agree.
PLAIN_KEYS: tuple[str, ...] = (
    "environment",
    "vaultNodes",
    "vaultImage",
    "vaultPort",
    "disableMlock",
    "vaultMemoryMb",
    "tlsValidityDays",
    "vaultTelemetryRetention",
    "dockerHosts",
    "brokerReplicas",
    "publishAddress",
    "brokerPort",
    "awsRegion",
    "awsEndpointUrl",
    "awsSealEndpointUrl",
    "awsCredentialsFile",
    "sealUsesInstanceRole",
    "sealMigrateToShamir",
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
    "brokerBaseImage",
    "loadBalancer",
    "loadBalancerImage",
    "brokerTokenPeriod",
    "brokerCredentialWrapTtl",
    "brokerCredentialRotation",
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
