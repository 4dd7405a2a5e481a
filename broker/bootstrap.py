"""Apply the one declarative Vault layout (broker/layout.py) to a Vault, idempotently.

`apply_layout` is the single implementation used by `keybroker vault bootstrap`, dev
mode and the Pulumi dynamic provider. It reads what is in place, writes only what
differs, and reports each step as changed or already in place. Conflicts that cannot
be fixed without destroying data (a mount or audit device of the same name but another
kind) are detected before anything is written, so a failed run changes nothing.

Vault API facts relied on: docs/facts/vault.md §3 (KV v2 config), §4.3 (token roles),
§4.5 (mounts, audit devices, ACL policies), §5 (AppRole, hvac method map).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import hvac
import hvac.exceptions
import requests

from broker.config import ConfigError, load_settings
from broker.durations import format_duration, parse_duration
from broker.ids import validate_account
from broker.layout import (
    APPROLE_MOUNT,
    AppRole,
    AuditDevice,
    TokenRole,
    VaultLayout,
    layout_from_settings,
)
from broker.names import ACCOUNT_META_KEY

_T = TypeVar("_T")
# How an apply step reports itself: (step name, whether it changed Vault, detail).
_Record = Callable[[str, bool, str], None]

StepCallback = Callable[[str], None]


class BootstrapError(Exception):
    """The layout could not be applied; the message says why (never holds a token)."""


class LayoutConflict(BootstrapError):
    """Something of the same name exists with another kind; nothing was changed."""


@dataclass(frozen=True)
class Step:
    name: str  # e.g. "policy keybroker-broker"
    changed: bool
    detail: str  # e.g. "written" / "already in place"

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass
class BootstrapReport:
    steps: list[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)

    @property
    def changed_steps(self) -> list[Step]:
        return [step for step in self.steps if step.changed]

    def summary(self) -> str:
        changed = len(self.changed_steps)
        if not changed:
            return f"nothing to do: all {len(self.steps)} steps already in place"
        return f"{changed} of {len(self.steps)} steps changed"


def apply_layout(
    client: hvac.Client,
    layout: VaultLayout,
    *,
    on_step: StepCallback | None = None,
) -> BootstrapReport:
    """Make `client`'s Vault hold `layout`. Safe to run any number of times.

    Raises LayoutConflict (before any write) when a mount, auth method or audit device
    of the same path exists with another type or options, and lets hvac/requests errors
    (permission denied, unreachable, sealed) propagate unchanged.
    """
    report = BootstrapReport()

    def record(name: str, changed: bool, detail: str) -> None:
        step = Step(name, changed, detail)
        report.steps.append(step)
        if on_step is not None:
            on_step(str(step))

    mounts = _data(client.sys.list_mounted_secrets_engines())
    auth_methods = _data(client.sys.list_auth_methods())
    audit = _data(client.sys.list_enabled_audit_devices()) if layout.audit_devices else {}
    _preflight(layout, mounts, auth_methods, audit)

    # Audit devices first, so that every configuration write after them is audited.
    for device in layout.audit_devices:
        _apply_audit_device(client, device, audit, record)
    _apply_mount(client, layout, mounts, record)
    _apply_transit_mount(client, layout, mounts, record)
    for name, text in layout.policies.items():
        _apply_policy(client, name, text, record)
    _apply_token_role(client, layout.site_token_role, record)
    _apply_approle_auth(client, auth_methods, record)
    for role in layout.approles:
        _apply_approle(client, role, record)
    return report


# --- conflicts, checked before any write ------------------------------------------------


def _preflight(
    layout: VaultLayout,
    mounts: Mapping[str, Any],
    auth_methods: Mapping[str, Any],
    audit: Mapping[str, Any],
) -> None:
    existing = mounts.get(f"{layout.mount}/")
    if existing is not None and not _is_kv2(existing):
        kind = existing.get("type")
        version = (existing.get("options") or {}).get("version", "1")
        raise LayoutConflict(
            f"mount {layout.mount}/ exists as {kind!r} (version {version}), not kv version 2;"
            " remove it or configure another KEYBROKER_KV_MOUNT"
        )
    approle = auth_methods.get(f"{APPROLE_MOUNT}/")
    if approle is not None and approle.get("type") != "approle":
        raise LayoutConflict(
            f"auth method at {APPROLE_MOUNT}/ is of type {approle.get('type')!r}, not approle"
        )
    for device in layout.audit_devices:
        current = audit.get(f"{device.path.strip('/')}/")
        if current is not None and not _audit_matches(current, device):
            raise LayoutConflict(
                f"audit device {device.path}/ exists with another type or options;"
                " audit devices cannot be changed in place: disable it first"
            )


def _is_kv2(mount: Mapping[str, Any]) -> bool:
    kind = mount.get("type")
    version = str((mount.get("options") or {}).get("version", ""))
    return kind == "kv-v2" or (kind == "kv" and version == "2")


def _audit_matches(current: Mapping[str, Any], device: AuditDevice) -> bool:
    options = current.get("options") or {}
    return current.get("type") == device.type and all(
        str(options.get(key)) == str(value) for key, value in device.options.items()
    )


# --- one function per kind of object ----------------------------------------------------


def _apply_mount(
    client: hvac.Client,
    layout: VaultLayout,
    mounts: Mapping[str, Any],
    record: _Record,
) -> None:
    name = f"mount {layout.mount}/ (kv v2)"
    if f"{layout.mount}/" in mounts:
        record(name, False, "already in place")
    else:
        client.sys.enable_secrets_engine(
            backend_type="kv",
            path=layout.mount,
            options={"version": "2"},
            description="keybroker: exchange API keys",
        )
        record(name, True, "enabled")
    config = _data(retry_kv_upgrade(lambda: client.read(f"{layout.mount}/config")))
    if int(config.get("max_versions") or 0) == layout.max_versions:
        record(f"{layout.mount} max_versions={layout.max_versions}", False, "already in place")
    else:
        # Only max_versions: other engine settings an operator chose stay as they are.
        retry_kv_upgrade(
            lambda: client.write_data(
                f"{layout.mount}/config", data={"max_versions": layout.max_versions}
            )
        )
        record(f"{layout.mount} max_versions={layout.max_versions}", True, "configured")


def _apply_transit_mount(
    client: hvac.Client, layout: VaultLayout, mounts: Mapping[str, Any], record: _Record
) -> None:
    """The Transit mount of `transit` custody (docs/custody.md)."""
    name = f"mount {layout.transit_mount}/ (transit)"
    existing = mounts.get(f"{layout.transit_mount}/")
    if existing is not None:
        if existing.get("type") != "transit":
            raise LayoutConflict(
                f"mount {layout.transit_mount}/ exists as {existing.get('type')!r}, not transit;"
                " remove it or configure another KEYBROKER_TRANSIT_MOUNT"
            )
        record(name, False, "already in place")
        return
    client.sys.enable_secrets_engine(
        backend_type="transit",
        path=layout.transit_mount,
        description="keybroker: exchange signing keys (never exportable)",
    )
    record(name, True, "enabled")


_KV_UPGRADING = "Upgrading from non-versioned to versioned data"


def retry_kv_upgrade(
    call: Callable[[], _T],
    *,
    attempts: int = 20,
    delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """Run `call`, retrying while a just-enabled KV v2 mount still answers 400
    "Upgrading from non-versioned to versioned data" (Vault before 1.12: transient, see
    hashicorp/vault-plugin-secrets-kv#75, fixed by hashicorp/vault#17406)."""
    for _ in range(attempts - 1):
        try:
            return call()
        except hvac.exceptions.InvalidRequest as exc:
            if _KV_UPGRADING not in str(exc):
                raise
        sleep(delay)
    return call()


def _apply_policy(client: hvac.Client, name: str, text: str, record: _Record) -> None:
    try:
        current = _data(client.sys.read_acl_policy(name)).get("policy")
    except hvac.exceptions.InvalidPath:
        current = None
    if current == text:
        record(f"policy {name}", False, "already in place")
        return
    client.sys.create_or_update_acl_policy(name=name, policy=text)
    record(f"policy {name}", True, "written" if current is None else "updated")


def _apply_token_role(client: hvac.Client, role: TokenRole, record: _Record) -> None:
    path = f"auth/token/roles/{role.name}"
    # hvac's create_or_update_role has no token_type / token_bound_cidrs: raw write.
    _apply_settings(client, path, role.vault_payload(), f"token role {role.name}", record)


def _apply_settings(
    client: hvac.Client,
    path: str,
    wanted: dict[str, Any],
    step: str,
    record: _Record,
) -> None:
    """Write a role's settings at `path` unless Vault already holds the same ones."""
    current = client.read(path)
    if current is not None and _same_settings(_data(current), wanted):
        record(step, False, "already in place")
        return
    client.write_data(path, data=wanted)
    record(step, True, "written" if current is None else "updated")


def _apply_approle_auth(
    client: hvac.Client, auth_methods: Mapping[str, Any], record: _Record
) -> None:
    if f"{APPROLE_MOUNT}/" in auth_methods:
        record(f"auth method {APPROLE_MOUNT}/", False, "already in place")
        return
    client.sys.enable_auth_method(method_type="approle", path=APPROLE_MOUNT)
    record(f"auth method {APPROLE_MOUNT}/", True, "enabled")


def _apply_approle(client: hvac.Client, role: AppRole, record: _Record) -> None:
    path = f"auth/{APPROLE_MOUNT}/role/{role.name}"
    _apply_settings(client, path, role.vault_payload(), f"approle {role.name}", record)


def _apply_audit_device(
    client: hvac.Client,
    device: AuditDevice,
    audit: Mapping[str, Any],
    record: _Record,
) -> None:
    name = f"audit device {device.path.strip('/')}/ ({device.type})"
    if f"{device.path.strip('/')}/" in audit:  # a mismatch was refused in _preflight
        record(name, False, "already in place")
        return
    client.sys.enable_audit_device(
        device_type=device.type, path=device.path.strip("/"), options=dict(device.options)
    )
    record(name, True, "enabled")


# --- comparing what Vault returns with what the layout asks for -------------------------


def _same_settings(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Vault answers TTLs in seconds and may spell CIDRs or lists differently."""
    return all(
        _normalize(key, current.get(key)) == _normalize(key, value) for key, value in wanted.items()
    )


def _normalize(key: str, value: Any) -> Any:
    if key.endswith("_ttl"):
        return int(parse_duration(value or 0))
    if key.endswith("cidrs"):
        return sorted(str(ipaddress.ip_network(str(item), strict=False)) for item in _items(value))
    if key.endswith("policies"):
        return sorted(str(item) for item in _items(value))
    if isinstance(value, bool) or value is None:
        return bool(value)
    return value


def _items(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _data(response: Any) -> dict[str, Any]:
    """The `data` of a Vault JSON answer (sys routes also copy it to the top level)."""
    if not isinstance(response, Mapping):
        return {}
    data = response.get("data")
    return dict(data) if isinstance(data, Mapping) else dict(response)


# --- credentials for services, dev mode and tests ---------------------------------------


class AppRoleCredentials(NamedTuple):
    """An AppRole role_id and a secret_id (or, when wrapped, a single-use wrapping token)."""

    role_id: str
    secret_id: str
    wrapped: bool = False

    def __repr__(self) -> str:  # the secret_id is a credential: never in a repr or log
        return (
            f"AppRoleCredentials(role_id={self.role_id!r}, secret_id=***, wrapped={self.wrapped})"
        )


def issue_approle_credentials(
    client: hvac.Client,
    role_name: str,
    *,
    wrap_ttl: str | int | None = None,
    mount_point: str = APPROLE_MOUNT,
    account: str | None = None,
) -> AppRoleCredentials:
    """role_id and a fresh secret_id for `role_name`; with `wrap_ttl`, the secret_id
    comes response-wrapped (unwrap it with `client.sys.unwrap(token)`). With `account`,
    the secret_id's metadata names it: Vault copies that metadata onto every token the
    secret_id logs in, which binds the token to the account (docs/key-health.md)."""
    role_id = _data(client.auth.approle.read_role_id(role_name, mount_point=mount_point))["role_id"]
    ttl = format_duration(parse_duration(wrap_ttl)) if wrap_ttl is not None else None
    metadata = {ACCOUNT_META_KEY: validate_account(account)} if account is not None else None
    answer = client.auth.approle.generate_secret_id(
        role_name, metadata=metadata, mount_point=mount_point, wrap_ttl=ttl
    )
    if ttl is not None:
        return AppRoleCredentials(role_id, answer["wrap_info"]["token"], wrapped=True)
    return AppRoleCredentials(role_id, answer["data"]["secret_id"])


def create_caller_token(
    client: hvac.Client,
    policies: Iterable[str],
    ttl: str | int | float = "24h",
    *,
    display_name: str = "keybroker-caller",
    renewable: bool = True,
) -> str:
    """A Vault token holding exactly `policies` (e.g. keybroker-intake) for a broker caller.

    No default policy: the marker policies already grant lookup-self, nothing else is
    needed to call the broker.
    """
    answer = client.auth.token.create(
        policies=list(policies),
        ttl=format_duration(parse_duration(ttl)),
        no_default_policy=True,
        renewable=renewable,
        display_name=display_name,
    )
    return str(answer["auth"]["client_token"])


# --- `keybroker vault bootstrap --addr URL` ---------------------------------------------


def run_bootstrap(addr: str) -> int:
    """Apply the configured layout to the Vault at `addr` with VAULT_TOKEN.

    Progress on stdout, one line per step. Exit 0 when the layout is in place; 2 with a
    message on stderr when the token is missing or refused, Vault is unreachable or
    sealed, the configuration is invalid, or the layout conflicts with what exists.
    """
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if not token:
        return _fail("VAULT_TOKEN is not set: export a Vault token allowed to configure Vault")
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(str(exc))
    verify: bool | str = True
    cacert = os.environ.get("VAULT_CACERT") or settings.vault_cacert
    if cacert:
        verify = str(cacert)
    client = hvac.Client(url=addr, token=token, verify=verify, timeout=15)
    layout = layout_from_settings(settings)
    print(f"Applying the keybroker layout to {addr} (mount {layout.mount}/)", flush=True)
    try:
        report = apply_layout(client, layout, on_step=lambda line: print(f"  {line}", flush=True))
    except LayoutConflict as exc:
        return _fail(f"conflict, nothing changed: {exc}")
    except hvac.exceptions.Forbidden:
        return _fail(
            "permission denied: VAULT_TOKEN may not configure mounts, policies, auth methods"
            " and roles (use a root or admin token)"
        )
    except hvac.exceptions.Unauthorized:
        return _fail("VAULT_TOKEN was refused by Vault")
    except hvac.exceptions.VaultDown:
        return _fail(f"Vault at {addr} is sealed or unavailable")
    except hvac.exceptions.VaultError as exc:
        return _fail(f"Vault refused a step: {exc}")
    except requests.exceptions.SSLError:
        return _fail(f"TLS verification failed for {addr} (set VAULT_CACERT)")
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        return _fail(f"cannot reach Vault at {addr}")
    except requests.exceptions.RequestException as exc:
        return _fail(f"request to Vault failed: {type(exc).__name__}")
    print(f"Done: {report.summary()}.", flush=True)
    return 0


def _fail(message: str) -> int:
    print(f"keybroker vault bootstrap: {message}", file=sys.stderr, flush=True)
    return 2
