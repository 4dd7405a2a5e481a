"""Vault's request pipeline, transport-neutral: Request in, Response out.

Order as in CODE vault/request_handling.go and http/logical.go (docs/facts/vault.md §1.3,
§4): HTTP method -> operation (LIST/`?list=true`, PATCH needs merge-patch JSON: 415);
sealed -> 503; route to the mount and path; token from `X-Vault-Token` or
`Authorization: Bearer` (invalid, expired or CIDR-mismatched -> 403); one use counted
(also when denied); existence check turns update into create; root-protected paths
need `sudo`; the ACL engine decides; the handler runs; `X-Vault-Wrap-TTL` wraps the
response; audit devices record request and response; the last use revokes the token.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from keybroker_dev.devvault import ids
from keybroker_dev.devvault.audit import AuditBroker, FileAuditDevice
from keybroker_dev.devvault.cidrs import addr_allowed
from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.durations import parse_duration
from keybroker_dev.devvault.errors import VaultError, bad_request, permission_denied, sealed
from keybroker_dev.devvault.kv import KVStore
from keybroker_dev.devvault.policystore import PolicyStore
from keybroker_dev.devvault.protocol import Request, Response, Result
from keybroker_dev.devvault.routing import Backend, Ctx, MountEntry
from keybroker_dev.devvault.seal import SealState
from keybroker_dev.devvault.tokens import TokenEntry, TokenStore
from keybroker_dev.devvault.wrapping import WrappingStore

_log = logging.getLogger(__name__)

# Unauthenticated sys paths that answer while sealed or uninitialised (DOC system/*.mdx).
SEAL_EXEMPT = frozenset({"sys/health", "sys/seal-status", "sys/init", "sys/unseal", "sys/leader"})
# CODE http/handler.go injectDataIntoTopRoutes (docs/facts/vault.md §4.1).
_INJECT_PREFIXES = ("sys/audit", "sys/auth", "sys/capabilities", "sys/mounts", "sys/policy")
_METHOD_OPS = {
    "GET": "read",
    "HEAD": "read",
    "LIST": "list",
    "POST": "update",
    "PUT": "update",
    "DELETE": "delete",
    "PATCH": "patch",
}
MERGE_PATCH = "application/merge-patch+json"


def token_from_request(request: Request) -> str:
    token = request.headers.get("x-vault-token", "")
    if not token:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
    return token


def invalid_token() -> VaultError:
    # Newer Vault adds "invalid token" to the denial (hashicorp/vault#26687, §4.2).
    return VaultError(403, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")


class Core:
    def __init__(
        self,
        clock: Clock,
        *,
        root_token: str | None = None,
        audit_dir: Path | None = None,
        initialized: bool = True,
        auto_unseal: bool = False,
        strict_batch_roles: bool = True,
    ) -> None:
        # Imported here: route modules import Core for typing only.
        from keybroker_dev.devvault.routes_cubbyhole import CubbyholeBackend
        from keybroker_dev.devvault.routes_sys import SystemBackend
        from keybroker_dev.devvault.routes_token import TokenBackend

        self.clock = clock
        self.lock = threading.RLock()
        self.seal = SealState(auto_unseal=auto_unseal)
        self.policies = PolicyStore()
        self.tokens = TokenStore(clock, strict_batch_roles=strict_batch_roles)
        self.wrapping = WrappingStore(clock)
        self.audit = AuditBroker(audit_dir)
        self.mounts: dict[str, MountEntry] = {}  # route prefix -> mount
        self.cubbyholes: dict[str, dict[str, dict[str, Any]]] = {}
        # DOC secrets/cubbyhole.mdx: a cubbyhole lives and dies with its token.
        self.tokens.on_forget.append(self._drop_cubbyhole)
        self._mount(
            "sys/",
            "system",
            SystemBackend(),
            "system endpoints used for control, policy and debugging",
        )
        self._mount(
            "cubbyhole/", "cubbyhole", CubbyholeBackend(), "per-token private secret storage"
        )
        token_mount = self._mount(
            "token/", "token", TokenBackend(), "token based credentials", is_auth=True
        )
        token_mount.leases = self.tokens.leases  # tuning auth/token/ tunes the token store
        self.root_token = ""
        if initialized:
            self.seal.initialize(
                {"secret_shares": 1, "secret_threshold": 1}
                if not auto_unseal
                else {"recovery_shares": 1, "recovery_threshold": 1}
            )
            self.seal.sealed = False
            self.root_token = self.tokens.create_root(root_token).id
        self._requested_root = root_token

    def _drop_cubbyhole(self, token_id: str) -> None:
        self.cubbyholes.pop(token_id, None)

    # -- mounts --------------------------------------------------------------------
    def _mount(
        self,
        path: str,
        type_: str,
        backend: Backend,
        description: str = "",
        *,
        is_auth: bool = False,
        options: dict[str, str] | None = None,
    ) -> MountEntry:
        entry = MountEntry(
            path=path,
            type=type_,
            backend=backend,
            accessor=f"{type_}_{ids.accessor()[:8].lower()}",
            uuid=ids.new_uuid(),
            is_auth=is_auth,
            description=description,
            options=options,
        )
        self.mounts[entry.route_prefix] = entry
        return entry

    def enable_secrets(self, path: str, data: dict[str, Any]) -> None:
        """`POST sys/mounts/:path` (DOC system/mounts.mdx). kv (version 2) and transit."""
        path = path.strip("/") + "/"
        if path.split("/")[0] in ("sys", "auth", "cubbyhole", "identity"):
            raise bad_request(f"cannot mount at reserved path {path!r}")
        self._check_free(path)
        type_ = str(data.get("type") or "")
        options = {str(k): str(v) for k, v in (data.get("options") or {}).items()}
        backend: Backend
        if type_ in ("kv", "kv-v2"):
            if type_ == "kv-v2":
                options["version"] = "2"
            if options.get("version") != "2":
                raise bad_request("devvault serves KV version 2 only: set options.version=2")
            from keybroker_dev.devvault.routes_kv import KVBackend

            backend, type_ = KVBackend(KVStore(self.clock)), "kv"
        elif type_ == "transit":
            from keybroker_dev.devvault.routes_transit import TransitBackend
            from keybroker_dev.devvault.transit import TransitKeyring

            backend = TransitBackend(TransitKeyring(self.clock))
        else:
            raise bad_request(f"plugin not found in the catalog: {type_}")
        self._mount(
            path, type_, backend, str(data.get("description") or ""), options=options or None
        )

    def enable_auth(self, path: str, data: dict[str, Any]) -> None:
        """`POST sys/auth/:path` (DOC system/auth.mdx). approle."""
        path = path.strip("/") + "/"
        self._check_free("auth/" + path)
        type_ = str(data.get("type") or "")
        if type_ != "approle":
            raise bad_request(f"plugin not found in the catalog: {type_}")
        from keybroker_dev.devvault.routes_approle import AppRoleBackend

        self._mount(
            path,
            type_,
            AppRoleBackend(self.clock, self.tokens),
            str(data.get("description") or ""),
            is_auth=True,
        )

    def _check_free(self, prefix: str) -> None:
        for existing in self.mounts:
            if existing.startswith(prefix) or prefix.startswith(existing):
                raise bad_request(f"path is already in use at {existing}")

    def disable(self, prefix: str) -> None:
        prefix = prefix.strip("/") + "/"
        entry = self.mounts.get(prefix)
        if entry is None:
            return
        if entry.type in ("system", "cubbyhole", "token"):
            raise bad_request(f"cannot unmount {prefix!r}")
        del self.mounts[prefix]

    def find_mount(self, path: str) -> MountEntry | None:
        best: MountEntry | None = None
        probe = path if path.endswith("/") else path + "/"
        for prefix, entry in self.mounts.items():
            if probe.startswith(prefix) and (best is None or len(prefix) > len(best.route_prefix)):
                best = entry
        return best

    # -- tokens --------------------------------------------------------------------
    def resolve_token(self, token_id: str, remote_addr: str) -> TokenEntry:
        """A live token usable from this address, or 403."""
        entry = self.tokens.lookup(token_id) if token_id else None
        if entry is None:
            raise invalid_token() if token_id else permission_denied()
        if not addr_allowed(remote_addr, entry.bound_cidrs):
            # CODE request_handling.go CheckToken: RemoteAddrIsOk else permission denied.
            raise permission_denied()
        return entry

    def acl_allows(
        self,
        token: TokenEntry,
        path: str,
        operation: str,
        data: dict[str, Any] | None = None,
        wrap_ttl: float | None = None,
    ) -> tuple[bool, bool]:
        """(allowed, root_privs) from the one ACL engine; root tokens may do anything."""
        if token.is_root:
            return True, True
        result = self.policies.acl(token.policies).allow_operation(
            path, operation, params=data, wrap_ttl=wrap_ttl
        )
        return bool(result.allowed), bool(result.root_privs)

    def capabilities(self, token: TokenEntry, path: str) -> list[str]:
        if token.is_root:
            return ["root"]
        return list(self.policies.acl(token.policies).capabilities(path.lstrip("/")))

    # -- the pipeline ----------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        request_id = ids.new_uuid()
        try:
            with self.lock:
                return self._handle(request, request_id)
        except VaultError as exc:
            return self._error_response(exc, request_id)
        except Exception:  # a devvault bug: answer like Vault's 500, keep serving
            _log.exception("devvault: internal error on %s %s", request.method, request.path)
            return Response(500, {"errors": ["internal error"]})

    def _error_response(self, exc: VaultError, request_id: str, mount_type: str = "") -> Response:
        if exc.body is not None:
            body = self._envelope(Result(data=exc.body.get("data")), mount_type, request_id)
            return Response(exc.status, body)
        return Response(exc.status, {"errors": exc.errors})

    def _handle(self, request: Request, request_id: str) -> Response:
        method = request.method
        operation = _METHOD_OPS.get(method)
        path = request.path.lstrip("/")
        if operation is None:
            raise VaultError(405)
        if method == "GET" and request.query.get("list", "").lower() in ("true", "1"):
            operation = "list"
        if operation == "list" and not path.endswith("/"):
            path += "/"
        if operation == "patch":
            ctype = request.headers.get("content-type", "").split(";")[0].strip()
            if ctype != MERGE_PATCH:
                raise VaultError(
                    415, f"PATCH requires Content-Type of {MERGE_PATCH}, provided {ctype}"
                )
        data = self._parse_data(request, method)

        if (self.seal.sealed or not self.seal.initialized) and path.rstrip("/") not in SEAL_EXEMPT:
            raise sealed()

        mount = self.find_mount(path)
        matched = None
        if mount is not None:
            matched = mount.backend.match(path[len(mount.route_prefix) :])
        spec = matched[0] if matched else None
        ctx = Ctx(self, request, operation, path, mount or self.mounts["sys/"], data)

        token_id = token_from_request(request)
        if spec is not None and spec.unauthenticated:
            if token_id:
                ctx.token = self.tokens.lookup(token_id)
            return self._dispatch(ctx, matched, request_id)

        token = self.resolve_token(token_id, request.remote_addr)
        self.tokens.use(token)
        ctx.token = token
        try:
            if spec is not None and spec.existence is not None and operation == "update":
                ctx.operation = "create" if not spec.existence(ctx, matched[1]) else "update"  # type: ignore[index]
            wrap_ttl = self._wrap_ttl(request)
            allowed, root_privs = self.acl_allows(token, path, ctx.operation, data, wrap_ttl)
            if spec is not None and ctx.operation in spec.sudo_ops and not root_privs:
                raise permission_denied()
            if not allowed:
                raise permission_denied()
            ctx.root_privs = root_privs
            if mount is None:
                raise VaultError(404, f'no handler for route "{path}". route entry not found.')
            return self._dispatch(ctx, matched, request_id)
        finally:
            self.tokens.finish_use(token)

    def _dispatch(self, ctx: Ctx, matched: Any, request_id: str) -> Response:
        if matched is None:
            raise VaultError(404, "unsupported path")
        spec, match = matched
        handler = spec.handler(ctx.operation)
        if handler is None:
            raise VaultError(405, "unsupported operation")
        self._audit("request", ctx, request_id, None, None)
        try:
            result = handler(ctx, match) or Result()
        except VaultError as exc:
            self._audit("response", ctx, request_id, None, exc)
            raise
        response = self._respond(ctx, result, request_id)
        self._audit("response", ctx, request_id, response.body, None)
        return response

    def _respond(self, ctx: Ctx, result: Result, request_id: str) -> Response:
        if result.raw is not None:
            status = result.status or 200
            return Response(status, None if ctx.request.method == "HEAD" else result.raw)
        if result.empty:
            return Response(result.status or 204)
        mount_type = ctx.mount.type
        if ctx.path.startswith(_INJECT_PREFIXES):
            result.inject_top_level = True
        body = self._envelope(result, mount_type, request_id)
        wrap_ttl = self._wrap_ttl(ctx.request)
        if wrap_ttl and (result.data is not None or result.auth is not None):
            accessor = (result.auth or {}).get("accessor", "")
            info = self.wrapping.wrap(body, wrap_ttl, ctx.path, accessor)
            # CODE request_handling.go: the wrapping response keeps the warnings.
            body = self._envelope(Result(warnings=result.warnings), "", request_id)
            body["wrap_info"] = info
        return Response(result.status or 200, body)

    @staticmethod
    def _envelope(result: Result, mount_type: str, request_id: str) -> dict[str, Any]:
        """CODE sdk/logical/translate_response.go (docs/facts/vault.md §4.1)."""
        body: dict[str, Any] = {
            "request_id": request_id,
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": result.data,
            "wrap_info": None,
            "warnings": result.warnings or None,
            "auth": result.auth,
            "mount_type": mount_type,
        }
        if result.inject_top_level and result.data:
            for key, value in result.data.items():
                body.setdefault(key, value)
        return body

    @staticmethod
    def _parse_data(request: Request, method: str) -> dict[str, Any]:
        if method in ("GET", "HEAD", "LIST", "DELETE"):
            data: dict[str, Any] = {
                k: v for k, v in request.query.items() if k not in ("list", "help")
            }
            if method == "DELETE" and request.body.strip():
                data.update(_json_object(request.body))
            return data
        if not request.body.strip():
            return {}
        return _json_object(request.body)

    @staticmethod
    def _wrap_ttl(request: Request) -> float | None:
        raw = request.headers.get("x-vault-wrap-ttl")
        if not raw:
            return None
        try:
            ttl = parse_duration(raw, "X-Vault-Wrap-TTL")
        except VaultError as exc:
            raise bad_request("error parsing X-Vault-Wrap-TTL header") from exc
        return ttl or None

    # -- audit -----------------------------------------------------------------------
    def _audit(
        self,
        kind: str,
        ctx: Ctx,
        request_id: str,
        response_body: dict[str, Any] | None,
        error: VaultError | None,
    ) -> None:
        if not self.audit.devices:
            return
        now = rfc3339(self.clock.now())
        token = ctx.token

        def entry_for(device: FileAuditDevice) -> dict[str, Any]:
            auth: dict[str, Any] = {}
            if token is not None:
                auth = {
                    "client_token": device.hash_structure(token.id),
                    "accessor": device.hash_structure(token.accessor)
                    if device.hmac_accessor
                    else token.accessor,
                    "display_name": token.display_name,
                    "policies": list(token.policies),
                    "token_policies": list(token.policies),
                    "metadata": token.meta,
                    "entity_id": "",
                    "token_type": token.type,
                    "token_ttl": int(token.creation_ttl),
                    "token_issue_time": rfc3339(token.creation_time),
                }
            req = {
                "id": request_id,
                "operation": ctx.operation,
                "mount_type": ctx.mount.type,
                "mount_point": ctx.mount.route_prefix,
                "client_token": device.hash_structure(token.id) if token else "",
                "client_token_accessor": device.hash_structure(token.accessor) if token else "",
                "namespace": {"id": "root"},
                "path": ctx.path,
                "data": device.hash_structure(ctx.data) if ctx.data else None,
                "remote_address": ctx.request.remote_addr,
                "remote_port": ctx.request.remote_port,
            }
            entry: dict[str, Any] = {"time": now, "type": kind, "auth": auth, "request": req}
            if kind == "response":
                resp: dict[str, Any] = {
                    "mount_type": ctx.mount.type,
                    "mount_point": ctx.mount.route_prefix,
                }
                if response_body is not None:
                    if response_body.get("data") is not None:
                        resp["data"] = device.hash_structure(response_body["data"])
                    if response_body.get("auth"):
                        resp["auth"] = {
                            **response_body["auth"],
                            "client_token": device.hash_structure(
                                response_body["auth"].get("client_token", "")
                            ),
                            "accessor": device.hash_structure(
                                response_body["auth"].get("accessor", "")
                            ),
                        }
                    if response_body.get("wrap_info"):
                        resp["wrap_info"] = device.hash_structure(response_body["wrap_info"])
                entry["response"] = resp
                if error is not None:
                    entry["error"] = "; ".join(error.errors)
            return entry

        self.audit.log(entry_for)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"failed to parse JSON input: {exc}") from exc
    if not isinstance(parsed, dict):
        raise bad_request("failed to parse JSON input: expected a JSON object")
    return parsed
