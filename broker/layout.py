"""The one declarative Vault layout (docs/contracts.md §2).

Dev mode, `keybroker vault bootstrap` and the Pulumi stacks all apply this same
description; nothing else spells out mount names, policy texts, roles or paths.
The policy texts live in `policies/vault/*.hcl` and are read from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Literal

from broker.durations import format_duration
from broker.names import (
    APPROLE_MOUNT,
    DEFAULT_MOUNT,
    DEFAULT_SITE_TOKEN_ROLE,
    DEFAULT_TRANSIT_MOUNT,
    SITE_TOKEN_MAX_TTL_S,
    SITE_TOKEN_TTL_S,
    Role,
)

if TYPE_CHECKING:
    from broker.config import Settings


SITE_READ_POLICY = "keybroker-site-read"
ROBOT_READ_POLICY = "keybroker-robot-read"
BROKER_POLICY = "keybroker-broker"
INTAKE_POLICY = "keybroker-intake"
SITE_BACKEND_POLICY = "keybroker-site-backend"
# Transit custody (docs/custody.md): the site and the robot may only HMAC/sign with
# their own role's keys; the broker imports, configures, deletes and verifies, never signs.
SITE_TRANSIT_POLICY = "keybroker-site-transit"
ROBOT_TRANSIT_POLICY = "keybroker-robot-transit"
BROKER_TRANSIT_POLICY = "keybroker-broker-transit"
TRANSIT_POLICY_NAMES: tuple[str, ...] = (
    SITE_TRANSIT_POLICY,
    ROBOT_TRANSIT_POLICY,
    BROKER_TRANSIT_POLICY,
)
BROKER_APPROLE = "keybroker-broker"
ROBOT_APPROLE = "keybroker-robot"
SITE_BACKEND_APPROLE = "keybroker-site-backend"
POLICY_NAMES: tuple[str, ...] = (
    SITE_READ_POLICY,
    ROBOT_READ_POLICY,
    BROKER_POLICY,
    INTAKE_POLICY,
    SITE_BACKEND_POLICY,
)


def policy_text(
    name: str, mount: str = DEFAULT_MOUNT, site_token_role: str = DEFAULT_SITE_TOKEN_ROLE
) -> str:
    """The shipped HCL of policy `name`, its paths moved to `mount` and its site token
    role renamed to `site_token_role` when they are not the defaults."""
    text = resources.files("policies").joinpath("vault", f"{name}.hcl").read_text()
    if mount != DEFAULT_MOUNT:
        text = re.sub(rf'(path\s+"){re.escape(DEFAULT_MOUNT)}/', rf"\g<1>{mount}/", text)
    if site_token_role != DEFAULT_SITE_TOKEN_ROLE:
        text = text.replace(
            f'"auth/token/create/{DEFAULT_SITE_TOKEN_ROLE}"',
            f'"auth/token/create/{site_token_role}"',
        )
    return text


def transit_policy_text(name: str, mount: str = DEFAULT_TRANSIT_MOUNT) -> str:
    """A shipped Transit policy, its paths moved to `mount` when not the default."""
    text = resources.files("policies").joinpath("vault", f"{name}.hcl").read_text()
    if mount != DEFAULT_TRANSIT_MOUNT:
        text = re.sub(rf'(path\s+"){re.escape(DEFAULT_TRANSIT_MOUNT)}/', rf"\g<1>{mount}/", text)
    return text


def transit_key_name(role: str, account: str, exchange: str) -> str:
    """The Transit key of one exchange key. The role prefix is what the policies match
    (`site-*`, `robot-*`); exchange ids hold no `-`, so the name parses from the right.
    Identifiers must be validated first (broker/ids.py)."""
    return f"{role}-{account}-{exchange}"


@dataclass(frozen=True)
class KeyPaths:
    """Where one key lives in the KV v2 mount. Identifiers must be validated first."""

    mount: str
    role: Role
    account: str
    exchange: str

    @property
    def relative(self) -> str:  # the hvac `path=` argument
        return f"{self.role}/{self.account}/{self.exchange}"

    @property
    def data(self) -> str:
        return f"{self.mount}/data/{self.relative}"

    @property
    def metadata(self) -> str:
        return f"{self.mount}/metadata/{self.relative}"


@dataclass(frozen=True)
class TokenRole:
    name: str
    allowed_policies: tuple[str, ...]
    token_type: Literal["batch", "service"]
    orphan: bool
    renewable: bool
    default_ttl: float  # seconds; applied by the broker on each create
    # The cap on a site token's TTL. For batch tokens Vault cannot hold it: it refuses a
    # batch role with an explicit max TTL ("'token_type' cannot be 'batch' when role is
    # set to generate tokens with an explicit max TTL", token_store.go
    # tokenStoreRoleCreateUpdate) and ignores a role's explicit max TTL when it creates
    # batch tokens. The broker enforces it instead: it always passes a `ttl` no greater
    # than this (KEYBROKER_SITE_TOKEN_MAX_TTL) and answers 400 above it.
    explicit_max_ttl: float
    bound_cidrs: tuple[str, ...]

    def vault_payload(self) -> dict[str, object]:
        """Body of `POST auth/token/roles/<name>`."""
        enforced_by_vault = self.token_type != "batch"
        return {
            "allowed_policies": list(self.allowed_policies),
            "orphan": self.orphan,
            "renewable": self.renewable,
            "token_type": self.token_type,
            # 0s for batch roles: also clears a value an older layout may have left.
            "token_explicit_max_ttl": format_duration(
                self.explicit_max_ttl if enforced_by_vault else 0
            ),
            "token_bound_cidrs": list(self.bound_cidrs),
            # Only the allowed policies: Vault's `default` policy would add sys/ and token
            # self-service paths that a site token has no use for.
            "token_no_default_policy": True,
        }


@dataclass(frozen=True)
class AppRole:
    name: str
    token_policies: tuple[str, ...]
    token_ttl: float
    token_max_ttl: float
    secret_id_ttl: float
    secret_id_num_uses: int = 0
    token_bound_cidrs: tuple[str, ...] = ()
    secret_id_bound_cidrs: tuple[str, ...] = ()

    def vault_payload(self) -> dict[str, object]:
        """Body of `POST auth/approle/role/<name>`."""
        return {
            "token_policies": list(self.token_policies),
            "token_ttl": format_duration(self.token_ttl),
            "token_max_ttl": format_duration(self.token_max_ttl),
            "secret_id_ttl": format_duration(self.secret_id_ttl),
            "secret_id_num_uses": self.secret_id_num_uses,
            "token_bound_cidrs": list(self.token_bound_cidrs),
            "secret_id_bound_cidrs": list(self.secret_id_bound_cidrs),
            "token_no_default_policy": True,
        }


@dataclass(frozen=True)
class AuditDevice:
    path: str
    type: str
    options: dict[str, str]


@dataclass(frozen=True)
class Principal:
    """Who holds which policies, and through which credential (the policy checks'
    principals: policies/invariants.yaml names them, `policy check` builds them here)."""

    name: str
    policies: tuple[str, ...]
    credential: str  # how the principal gets its token, for reports and docs


@dataclass(frozen=True)
class VaultLayout:
    mount: str
    max_versions: int
    policies: dict[str, str]  # name -> HCL text
    site_token_role: TokenRole
    approles: tuple[AppRole, ...]
    audit_devices: tuple[AuditDevice, ...] = field(default=())
    transit_mount: str = DEFAULT_TRANSIT_MOUNT

    def key_paths(self, role: Role, account: str, exchange: str) -> KeyPaths:
        return KeyPaths(self.mount, role, account, exchange)

    def approle(self, name: str) -> AppRole:
        for role in self.approles:
            if role.name == name:
                return role
        raise KeyError(f"no AppRole {name!r} in this layout")

    @property
    def token_roles(self) -> tuple[TokenRole, ...]:
        return (self.site_token_role,)

    def principals(self) -> tuple[Principal, ...]:
        """The keybroker principals, each with the policies of its credential."""
        role = self.site_token_role
        return (
            Principal("site", role.allowed_policies, f"batch tokens from token role {role.name}"),
            Principal(
                "robot", self.approle(ROBOT_APPROLE).token_policies, f"AppRole {ROBOT_APPROLE}"
            ),
            Principal(
                "broker", self.approle(BROKER_APPROLE).token_policies, f"AppRole {BROKER_APPROLE}"
            ),
            Principal("intake", (INTAKE_POLICY,), "caller tokens issued by the operator"),
            Principal(
                "site-backend",
                self.approle(SITE_BACKEND_APPROLE).token_policies,
                f"AppRole {SITE_BACKEND_APPROLE}",
            ),
        )

    def names(self) -> dict[str, str]:
        """Placeholders the invariants file may use (`{mount}`, `{site_token_role}`...)."""
        return {
            "mount": self.mount,
            "transit_mount": self.transit_mount,
            "site_token_role": self.site_token_role.name,
            "approle_mount": APPROLE_MOUNT,
            "broker_approle": BROKER_APPROLE,
            "robot_approle": ROBOT_APPROLE,
            "site_backend_approle": SITE_BACKEND_APPROLE,
        }


def build_layout(
    *,
    mount: str = DEFAULT_MOUNT,
    site_token_ttl: float = SITE_TOKEN_TTL_S,
    site_token_max_ttl: float = SITE_TOKEN_MAX_TTL_S,
    site_token_cidrs: tuple[str, ...] = (),
    robot_cidrs: tuple[str, ...] = (),
    audit_devices: tuple[AuditDevice, ...] = (),
    site_token_role_name: str = DEFAULT_SITE_TOKEN_ROLE,
    transit_mount: str = DEFAULT_TRANSIT_MOUNT,
) -> VaultLayout:
    """The layout for one deployment; every argument comes from configuration."""
    return VaultLayout(
        mount=mount,
        transit_mount=transit_mount,
        # Replacements destroy older versions right away; a few slots cover the race
        # between the write and the destroy.
        max_versions=5,
        policies={name: policy_text(name, mount, site_token_role_name) for name in POLICY_NAMES}
        | {name: transit_policy_text(name, transit_mount) for name in TRANSIT_POLICY_NAMES},
        site_token_role=TokenRole(
            name=site_token_role_name,
            allowed_policies=(SITE_READ_POLICY, SITE_TRANSIT_POLICY),
            token_type="batch",
            orphan=True,
            renewable=False,
            default_ttl=site_token_ttl,
            explicit_max_ttl=site_token_max_ttl,
            bound_cidrs=tuple(site_token_cidrs),
        ),
        approles=(
            AppRole(
                name=BROKER_APPROLE,
                token_policies=(BROKER_POLICY, BROKER_TRANSIT_POLICY),
                token_ttl=3600,
                token_max_ttl=4 * 3600,
                secret_id_ttl=24 * 3600,
            ),
            AppRole(
                name=ROBOT_APPROLE,
                token_policies=(ROBOT_READ_POLICY, ROBOT_TRANSIT_POLICY),
                token_ttl=3600,
                token_max_ttl=24 * 3600,
                secret_id_ttl=0,
                token_bound_cidrs=tuple(robot_cidrs),
                secret_id_bound_cidrs=tuple(robot_cidrs),
            ),
            # The site backend mints site tokens with its own token (policy
            # keybroker-site-backend may create from the site token role); the broker
            # only relays that one call, so its own identity reaches no key.
            AppRole(
                name=SITE_BACKEND_APPROLE,
                token_policies=(SITE_BACKEND_POLICY,),
                token_ttl=3600,
                token_max_ttl=24 * 3600,
                secret_id_ttl=0,
            ),
        ),
        audit_devices=audit_devices,
    )


def layout_from_settings(
    settings: Settings,
    *,
    audit_devices: tuple[AuditDevice, ...] = (),
    robot_login_cidrs: tuple[str, ...] | None = None,
) -> VaultLayout:
    """The layout that `keybroker vault bootstrap` applies for this configuration.

    SITE_VAULT_CIDRS bind the site tokens, ROBOT_VAULT_CIDRS the robot's AppRole login.
    `robot_login_cidrs` replaces the latter where the robot reaches Vault from another
    address than the exchanges (tests and dev mode: loopback).
    """
    robot_cidrs = settings.robot_vault_cidrs if robot_login_cidrs is None else robot_login_cidrs
    return build_layout(
        mount=settings.kv_mount,
        site_token_ttl=settings.site_token_ttl,
        site_token_max_ttl=settings.site_token_max_ttl,
        site_token_cidrs=tuple(settings.site_vault_cidrs),
        robot_cidrs=tuple(robot_cidrs),
        audit_devices=audit_devices,
        site_token_role_name=settings.site_token_role,
        transit_mount=settings.transit_mount,
    )
