"""The AppRole backend's paths (DOC api-docs/auth/approle.mdx, docs/facts/vault.md §5).

`login` is unauthenticated; `role/:name` has an existence check (create vs update).
"""

from __future__ import annotations

import dataclasses
import re

from keybroker_dev.devvault.approle import AppRoleRole, AppRoleStore
from keybroker_dev.devvault.clock import Clock
from keybroker_dev.devvault.errors import bad_request, not_found
from keybroker_dev.devvault.params import as_str
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, PathSpec, spec
from keybroker_dev.devvault.tokens import TokenStore

Match = re.Match[str]


class AppRoleBackend(Backend):
    type = "approle"

    def __init__(self, clock: Clock, tokens: TokenStore) -> None:
        self.store = AppRoleStore(clock, tokens)

    def _exists(self, ctx: Ctx, m: Match) -> bool:
        return m["role"].lower() in self.store.roles

    def write_role(self, ctx: Ctx, m: Match) -> None:
        name = m["role"].lower()
        existing = self.store.roles.get(name)
        # Validate on a copy so that a bad request leaves the stored role untouched.
        candidate = dataclasses.replace(existing) if existing else AppRoleRole(name=name)
        candidate.update(ctx.data)
        if existing is None and ctx.data.get("role_id"):
            candidate.role_id = as_str(ctx.data, "role_id")
        self.store.roles[name] = candidate

    def read_role(self, ctx: Ctx, m: Match) -> Result:
        role = self.store.roles.get(m["role"].lower())
        if role is None:
            raise not_found()
        return Result(data=role.to_dict())

    def delete_role(self, ctx: Ctx, m: Match) -> None:
        self.store.delete_role(m["role"])

    def list_roles(self, ctx: Ctx, m: Match) -> Result:
        if not self.store.roles:
            raise not_found()
        return Result(data={"keys": sorted(self.store.roles)})

    def read_role_id(self, ctx: Ctx, m: Match) -> Result:
        return Result(data={"role_id": self.store.role(m["role"]).role_id})

    def write_role_id(self, ctx: Ctx, m: Match) -> None:
        self.store.set_role_id(m["role"], as_str(ctx.data, "role_id"))

    def _secret_id_response(self, ctx: Ctx, m: Match, custom: str = "") -> Result:
        entry = self.store.generate_secret_id(m["role"], ctx.data, custom)
        return Result(
            data={
                "secret_id": entry.secret_id,
                "secret_id_accessor": entry.accessor,
                "secret_id_ttl": int(entry.ttl),
                "secret_id_num_uses": entry.num_uses,
            }
        )

    def generate_secret_id(self, ctx: Ctx, m: Match) -> Result:
        return self._secret_id_response(ctx, m)

    def custom_secret_id(self, ctx: Ctx, m: Match) -> Result:
        secret_id = as_str(ctx.data, "secret_id")
        if not secret_id:
            raise bad_request("missing secret_id")
        return self._secret_id_response(ctx, m, secret_id)

    def list_secret_ids(self, ctx: Ctx, m: Match) -> Result:
        self.store.role(m["role"])
        accessors = sorted(
            e.accessor
            for e in list(self.store.secret_ids.values())
            if e.role == m["role"].lower() and self.store.live_secret_id(e.secret_id)
        )
        if not accessors:
            raise not_found()
        return Result(data={"keys": accessors})

    def lookup_secret_id(self, ctx: Ctx, m: Match) -> Result | None:
        entry = self.store.live_secret_id(as_str(ctx.data, "secret_id"))
        if entry is None or entry.role != m["role"].lower():
            return None  # DOC: unknown secret-id -> empty 204
        return Result(data=entry.view())

    def destroy_secret_id(self, ctx: Ctx, m: Match) -> None:
        entry = self.store.live_secret_id(as_str(ctx.data, "secret_id"))
        if entry is not None and entry.role == m["role"].lower():
            del self.store.secret_ids[entry.secret_id]

    def lookup_accessor(self, ctx: Ctx, m: Match) -> Result:
        entry = self.store.by_accessor(m["role"], as_str(ctx.data, "secret_id_accessor"))
        if entry is None:
            raise not_found()
        return Result(data=entry.view())

    def destroy_accessor(self, ctx: Ctx, m: Match) -> None:
        entry = self.store.by_accessor(m["role"], as_str(ctx.data, "secret_id_accessor"))
        if entry is not None:
            del self.store.secret_ids[entry.secret_id]

    def login(self, ctx: Ctx, m: Match) -> Result:
        token = self.store.login(ctx.data, ctx.remote_addr, ctx.mount.path, ctx.mount.leases)
        return Result(auth=ctx.core.tokens.auth_block(token))

    def paths(self) -> list[PathSpec]:
        role = "role/(?P<role>[^/]+)"
        return [
            spec("login", update=self.login, unauthenticated=True),
            spec("role/?", list=self.list_roles),
            spec(
                role,
                existence=self._exists,
                read=self.read_role,
                update=self.write_role,
                delete=self.delete_role,
            ),
            spec(role + "/role-id", read=self.read_role_id, update=self.write_role_id),
            spec(role + "/secret-id/?", update=self.generate_secret_id, list=self.list_secret_ids),
            spec(role + "/custom-secret-id", update=self.custom_secret_id),
            spec(role + "/secret-id/lookup", update=self.lookup_secret_id),
            spec(
                role + "/secret-id/destroy",
                update=self.destroy_secret_id,
                delete=self.destroy_secret_id,
            ),
            spec(role + "/secret-id-accessor/lookup", update=self.lookup_accessor),
            spec(
                role + "/secret-id-accessor/destroy",
                update=self.destroy_accessor,
                delete=self.destroy_accessor,
            ),
        ]
