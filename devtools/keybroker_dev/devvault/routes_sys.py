"""The `sys/` backend: health, seal, init, mounts, auth methods, policies, audit,
capabilities and response wrapping.

DOC api-docs/system/{health,seal-status,init,unseal,seal,leader,mounts,auth,
policies,policy,audit,audit-hash,capabilities-self,capabilities,wrapping-unwrap,
wrapping-lookup,wrapping-wrap}.mdx; summarised in docs/facts/vault.md §4.4, §4.5.
Root-protected (sudo) paths per DOC policies.mdx (docs/facts/vault.md §1.7):
`sys/audit` (read), `sys/audit/:path` (update/delete), `sys/auth/:path`, `sys/seal`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from keybroker_dev.devvault.durations import parse_duration
from keybroker_dev.devvault.errors import bad_request, not_found, permission_denied
from keybroker_dev.devvault.params import as_int, as_str, as_str_list
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, MountEntry, PathSpec, spec
from keybroker_dev.devvault.seal import VERSION

Match = re.Match[str]


# -- health, seal, init ----------------------------------------------------------------
def health(ctx: Ctx, _: Match) -> Result:
    """DOC system/health.mdx: 200 active, 501 not initialised, 503 sealed; overridable."""
    seal = ctx.core.seal
    q = ctx.data
    if not seal.initialized:
        status = as_int(q, "uninitcode", 501)
    elif seal.sealed:
        status = as_int(q, "sealedcode", 503)
    else:
        status = as_int(q, "activecode", 200)
    body = {
        "initialized": seal.initialized,
        "sealed": seal.sealed,
        "standby": False,
        "performance_standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(ctx.core.clock.now()),
        "version": VERSION,
        "enterprise": False,
        "cluster_name": "devvault",
        "cluster_id": ctx.mount.uuid,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    }
    return Result(raw=body, status=status)


def seal_status(ctx: Ctx, _: Match) -> Result:
    return Result(raw=ctx.core.seal.status())


def init_status(ctx: Ctx, _: Match) -> Result:
    return Result(raw={"initialized": ctx.core.seal.initialized})


def initialize(ctx: Ctx, _: Match) -> Result:
    """DOC system/init.mdx: keys (or recovery keys with auto-unseal) and a root token."""
    core = ctx.core
    out = core.seal.initialize(ctx.data)
    core.root_token = core.tokens.create_root(core._requested_root).id
    out["root_token"] = core.root_token
    return Result(raw=out)


def unseal(ctx: Ctx, _: Match) -> Result:
    ctx.core.seal.unseal(ctx.data)
    return Result(raw=ctx.core.seal.status())


def seal(ctx: Ctx, _: Match) -> None:
    ctx.core.seal.sealed = True


def leader(ctx: Ctx, _: Match) -> Result:
    return Result(
        raw={
            "ha_enabled": False,
            "is_self": False,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": False,
            "performance_standby_last_remote_wal": 0,
        }
    )


# -- mounts and auth methods --------------------------------------------------------------
def list_mounts(ctx: Ctx, _: Match) -> Result:
    mounts = {m.path: m.to_dict() for m in ctx.core.mounts.values() if not m.is_auth}
    return Result(data=mounts)


def enable_mount(ctx: Ctx, m: Match) -> None:
    ctx.core.enable_secrets(m["path"], ctx.data)


def read_mount(ctx: Ctx, m: Match) -> Result:
    entry = ctx.core.mounts.get(m["path"].strip("/") + "/")
    if entry is None or entry.is_auth:
        raise bad_request(f"No secret engine mount at {m['path'].strip('/')}/")
    return Result(data=entry.to_dict())


def disable_mount(ctx: Ctx, m: Match) -> None:
    ctx.core.disable(m["path"])


def _tuned(ctx: Ctx, m: Match, *, auth: bool) -> MountEntry | None:
    """The mount a tune path names: `sys/auth/<p>/tune` names the auth method at
    `auth/<p>/`; `sys/mounts/<p>/tune` any mount, auth methods included (`auth/<p>`)."""
    key = m["path"].strip("/") + "/"
    return ctx.core.mounts.get(("auth/" + key) if auth else key)


def _read_tune(ctx: Ctx, m: Match, *, auth: bool) -> Result:
    """DOC system/mounts.mdx and system/auth.mdx "Read ... configuration": the effective
    lease TTLs in seconds (the mount's, else the server's), CODE handleTuneReadCommon."""
    entry = _tuned(ctx, m, auth=auth)
    if entry is None:
        raise bad_request(f"cannot fetch sysview for path {m['path'].strip('/') + '/'!r}")
    data: dict[str, Any] = {
        "default_lease_ttl": int(entry.leases.default_ttl),
        "max_lease_ttl": int(entry.leases.max_ttl),
        "force_no_cache": False,
        "description": entry.description,
    }
    if entry.is_auth:
        data["token_type"] = "default-service"
    else:
        data["options"] = entry.options
    return Result(data=data)


def _lease_ttl(ctx: Ctx, key: str, current: float) -> float:
    """CODE handleTuneWriteCommon: absent or "" keeps the value, "system" clears it (the
    server's applies), anything else is a duration (integer seconds or Go syntax)."""
    raw = ctx.data.get(key)
    if raw is None or raw == "":
        return current
    if raw == "system":
        return 0.0
    return parse_duration(raw, key)


def _write_tune(ctx: Ctx, m: Match, *, auth: bool) -> None:
    """DOC system/mounts.mdx and system/auth.mdx "Tune ... configuration"."""
    entry = _tuned(ctx, m, auth=auth)
    if entry is None:
        raise bad_request(f"no mount entry found for path {m['path'].strip('/') + '/'!r}")
    new_default = _lease_ttl(ctx, "default_lease_ttl", entry.leases.default_lease_ttl)
    new_max = _lease_ttl(ctx, "max_lease_ttl", entry.leases.max_lease_ttl)
    # CODE tuneMountTTLs: only two non-zero values are compared with each other.
    if new_default and new_max and new_max < new_default:
        raise bad_request(
            f"backend max lease TTL of {int(new_max)} would be less than backend default "
            f"lease TTL of {int(new_default)}"
        )
    options = ctx.data.get("options")
    if isinstance(options, dict) and entry.type == "kv" and str(options.get("version", "2")) != "2":
        raise bad_request("devvault serves KV version 2 only")
    entry.leases.default_lease_ttl = new_default
    entry.leases.max_lease_ttl = new_max
    if "description" in ctx.data:
        entry.description = as_str(ctx.data, "description")


def read_mount_tune(ctx: Ctx, m: Match) -> Result:
    return _read_tune(ctx, m, auth=False)


def write_mount_tune(ctx: Ctx, m: Match) -> None:
    _write_tune(ctx, m, auth=False)


def read_auth_tune(ctx: Ctx, m: Match) -> Result:
    return _read_tune(ctx, m, auth=True)


def write_auth_tune(ctx: Ctx, m: Match) -> None:
    _write_tune(ctx, m, auth=True)


def list_auth(ctx: Ctx, _: Match) -> Result:
    return Result(data={m.path: m.to_dict() for m in ctx.core.mounts.values() if m.is_auth})


def enable_auth(ctx: Ctx, m: Match) -> None:
    ctx.core.enable_auth(m["path"], ctx.data)


def disable_auth(ctx: Ctx, m: Match) -> None:
    ctx.core.disable("auth/" + m["path"].strip("/"))


# -- policies ------------------------------------------------------------------------
def _policy_text(data: dict[str, Any], key: str) -> str:
    text = as_str(data, key)
    if not text.strip():
        raise bad_request(f"'{key}' parameter not supplied or empty")
    # DOC system/policies.mdx: the policy may be sent base64-encoded.
    if re.fullmatch(r"[A-Za-z0-9+/=\s]+", text) and "\n" not in text.strip():
        try:
            return base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pass
    return text


def list_acl_policies(ctx: Ctx, _: Match) -> Result:
    names = ctx.core.policies.names()
    return Result(data={"keys": names, "policies": names})


def read_acl_policy(ctx: Ctx, m: Match) -> Result:
    text = ctx.core.policies.get(m["name"])
    if text is None:
        raise not_found()
    return Result(data={"name": m["name"].strip().lower(), "policy": text})


def write_acl_policy(ctx: Ctx, m: Match) -> None:
    ctx.core.policies.put(m["name"], _policy_text(ctx.data, "policy"))


def delete_policy(ctx: Ctx, m: Match) -> None:
    ctx.core.policies.delete(m["name"])


def read_legacy_policy(ctx: Ctx, m: Match) -> Result:
    text = ctx.core.policies.get(m["name"])
    if text is None:
        raise not_found()
    return Result(data={"name": m["name"].strip().lower(), "rules": text})


def write_legacy_policy(ctx: Ctx, m: Match) -> None:
    key = "rules" if "rules" in ctx.data and "policy" not in ctx.data else "policy"
    ctx.core.policies.put(m["name"], _policy_text(ctx.data, key))


# -- audit ---------------------------------------------------------------------------
def list_audit(ctx: Ctx, _: Match) -> Result:
    return Result(data={p: d.to_dict() for p, d in ctx.core.audit.devices.items()})


def enable_audit(ctx: Ctx, m: Match) -> None:
    ctx.core.audit.enable(m["path"], ctx.data)


def disable_audit(ctx: Ctx, m: Match) -> None:
    ctx.core.audit.disable(m["path"])


def audit_hash(ctx: Ctx, m: Match) -> Result:
    return Result(data={"hash": ctx.core.audit.audit_hash(m["path"], as_str(ctx.data, "input"))})


# -- capabilities ----------------------------------------------------------------------
def _paths(data: dict[str, Any]) -> list[str]:
    paths = as_str_list(data, "paths") or as_str_list(data, "path") or []
    if not paths:
        raise bad_request("missing paths")
    return paths


def _capabilities_result(ctx: Ctx, token_id: str, paths: list[str]) -> Result:
    token = ctx.core.tokens.lookup(token_id)
    out: dict[str, Any] = {}
    for path in paths:
        out[path] = ctx.core.capabilities(token, path) if token else ["deny"]
    if len(paths) == 1:  # CODE logical_system.go: kept for backwards compatibility
        out["capabilities"] = out[paths[0]]
    return Result(data=out)


def capabilities_self(ctx: Ctx, _: Match) -> Result:
    assert ctx.token is not None
    return _capabilities_result(ctx, ctx.token.id, _paths(ctx.data))


def capabilities(ctx: Ctx, _: Match) -> Result:
    token = as_str(ctx.data, "token")
    if not token:
        raise bad_request("missing token")
    return _capabilities_result(ctx, token, _paths(ctx.data))


def capabilities_accessor(ctx: Ctx, _: Match) -> Result:
    entry = ctx.core.tokens.by_accessor(as_str(ctx.data, "accessor"))
    if entry is None:
        raise bad_request("invalid accessor")
    return _capabilities_result(ctx, entry.id, _paths(ctx.data))


# -- response wrapping ---------------------------------------------------------------
def unwrap(ctx: Ctx, _: Match) -> Result:
    """DOC system/wrapping-unwrap.mdx: the wrapping token as X-Vault-Token, or another
    token (allowed `update` on sys/wrapping/unwrap) with the wrapping token in the body."""
    from keybroker_dev.devvault.core import token_from_request

    core = ctx.core
    header = token_from_request(ctx.request)
    body_token = as_str(ctx.data, "token")
    if body_token and header and header == body_token:
        raise bad_request("Do not use the wrapping token in both the header and the body")
    if body_token and header and core.wrapping.get(header) is None:
        caller = core.resolve_token(header, ctx.remote_addr)
        core.tokens.use(caller)
        try:
            allowed, _root = core.acl_allows(caller, "sys/wrapping/unwrap", "update")
        finally:
            core.tokens.finish_use(caller)
        if not allowed:
            raise permission_denied()
    wrapping_token = body_token or header
    if not wrapping_token:
        raise permission_denied()
    body = dict(core.wrapping.unwrap(wrapping_token))
    return Result(raw=body)


def wrapping_lookup(ctx: Ctx, _: Match) -> Result:
    from keybroker_dev.devvault.core import token_from_request

    token = as_str(ctx.data, "token") or token_from_request(ctx.request)
    return Result(data=ctx.core.wrapping.lookup(token))


def wrap(ctx: Ctx, _: Match) -> Result:
    if not ctx.request.headers.get("x-vault-wrap-ttl"):
        raise bad_request("wrap ttl must be set (X-Vault-Wrap-TTL)")
    return Result(data=dict(ctx.data))


class SystemBackend(Backend):
    type = "system"

    def paths(self) -> list[PathSpec]:
        return [
            spec("health", read=health, unauthenticated=True),
            spec("seal-status", read=seal_status, unauthenticated=True),
            spec("init", read=init_status, update=initialize, unauthenticated=True),
            spec("unseal", update=unseal, unauthenticated=True),
            spec("leader", read=leader, unauthenticated=True),
            spec("seal", update=seal, sudo=("update",)),
            spec("mounts", read=list_mounts),
            spec("mounts/(?P<path>.+?)/tune", read=read_mount_tune, update=write_mount_tune),
            spec("mounts/(?P<path>.+)", read=read_mount, update=enable_mount, delete=disable_mount),
            spec("auth", read=list_auth),
            spec(
                "auth/(?P<path>.+?)/tune",
                read=read_auth_tune,
                update=write_auth_tune,
                sudo=("read", "update"),
            ),
            spec(
                "auth/(?P<path>.+)",
                update=enable_auth,
                delete=disable_auth,
                sudo=("read", "update", "delete"),
            ),
            spec("policies/acl/?", list=list_acl_policies),
            spec(
                "policies/acl/(?P<name>[^/]+)",
                read=read_acl_policy,
                update=write_acl_policy,
                delete=delete_policy,
            ),
            spec("policy/?", read=list_acl_policies),
            spec(
                "policy/(?P<name>[^/]+)",
                read=read_legacy_policy,
                update=write_legacy_policy,
                delete=delete_policy,
            ),
            spec("audit", read=list_audit, sudo=("read",)),
            spec(
                "audit/(?P<path>.+)",
                update=enable_audit,
                delete=disable_audit,
                sudo=("update", "delete"),
            ),
            spec("audit-hash/(?P<path>.+)", update=audit_hash),
            spec("capabilities-self", update=capabilities_self),
            spec("capabilities", update=capabilities),
            spec("capabilities-accessor", update=capabilities_accessor),
            spec("wrapping/unwrap", update=unwrap, unauthenticated=True),
            spec(
                "wrapping/lookup",
                update=wrapping_lookup,
                read=wrapping_lookup,
                unauthenticated=True,
            ),
            spec("wrapping/wrap", update=wrap),
        ]
