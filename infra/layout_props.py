"""broker.layout.VaultLayout <-> plain resource properties.

The program builds the layout once with `broker.layout.build_layout` and passes it to
the Vault-config resource as plain data, so that a diff shows any change (a policy file
edited, a TTL changed), the policy pack reviews exactly what will be applied, and the
provider hands the very same layout back to `broker.bootstrap.apply_layout`. Engine
round trips turn tuples into lists and ints into floats; `layout_from_props` undoes that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from broker.layout import DEFAULT_TRANSIT_MOUNT, AppRole, AuditDevice, TokenRole, VaultLayout


def layout_to_props(layout: VaultLayout) -> dict[str, Any]:
    return _plain(dataclasses.asdict(layout))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _strs(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (values or ()))


def layout_from_props(props: dict[str, Any]) -> VaultLayout:
    role = props["site_token_role"]
    return VaultLayout(
        mount=str(props["mount"]),
        transit_mount=str(props.get("transit_mount") or DEFAULT_TRANSIT_MOUNT),
        max_versions=int(props["max_versions"]),
        policies={str(k): str(v) for k, v in props["policies"].items()},
        site_token_role=TokenRole(
            name=str(role["name"]),
            allowed_policies=_strs(role["allowed_policies"]),
            token_type=role["token_type"],
            orphan=bool(role["orphan"]),
            renewable=bool(role["renewable"]),
            default_ttl=float(role["default_ttl"]),
            explicit_max_ttl=float(role["explicit_max_ttl"]),
            bound_cidrs=_strs(role["bound_cidrs"]),
        ),
        approles=tuple(
            AppRole(
                name=str(a["name"]),
                token_policies=_strs(a["token_policies"]),
                token_ttl=float(a["token_ttl"]),
                token_max_ttl=float(a["token_max_ttl"]),
                secret_id_ttl=float(a["secret_id_ttl"]),
                secret_id_num_uses=int(a.get("secret_id_num_uses") or 0),
                token_bound_cidrs=_strs(a.get("token_bound_cidrs")),
                secret_id_bound_cidrs=_strs(a.get("secret_id_bound_cidrs")),
            )
            for a in props["approles"]
        ),
        audit_devices=tuple(
            AuditDevice(
                path=str(d["path"]),
                type=str(d["type"]),
                options={str(k): str(v) for k, v in (d.get("options") or {}).items()},
            )
            for d in props.get("audit_devices") or ()
        ),
    )
