"""The `auth/token/` backend: create (plain, orphan, by role), roles, lookup, renew, revoke.

DOC api-docs/auth/token.mdx (docs/facts/vault.md §4.3, hvac map §5). Token roles have an
existence check (create vs update, §1.3). Root-protected per DOC policies.mdx (§1.7):
`auth/token/accessors` (list) and `auth/token/revoke-orphan`; `id`, `no_parent` and
`period` on create need root or sudo, checked by the token store.
"""

from __future__ import annotations

import dataclasses
import re

from keybroker_dev.devvault.durations import parse_duration
from keybroker_dev.devvault.errors import bad_request, not_found
from keybroker_dev.devvault.params import as_str
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, PathSpec, spec
from keybroker_dev.devvault.tokens import TokenEntry, TokenRole, require_found

Match = re.Match[str]


def _caller(ctx: Ctx) -> TokenEntry:
    assert ctx.token is not None  # authenticated paths only
    return ctx.token


def _create(ctx: Ctx, *, role: str | None, orphan: bool) -> Result:
    entry, warnings = ctx.core.tokens.create(
        _caller(ctx),
        ctx.data,
        role_name=role,
        orphan_endpoint=orphan,
        privileged=ctx.root_privs,
        path=ctx.path,
    )
    for name in entry.policies:
        if name != "root" and not ctx.core.policies.exists(name):
            warnings.append(f'Policy "{name}" does not exist')
    return Result(auth=ctx.core.tokens.auth_block(entry), warnings=warnings or None)


def create(ctx: Ctx, _: Match) -> Result:
    return _create(ctx, role=None, orphan=False)


def create_orphan(ctx: Ctx, _: Match) -> Result:
    return _create(ctx, role=None, orphan=True)


def create_with_role(ctx: Ctx, m: Match) -> Result:
    return _create(ctx, role=m["role"], orphan=False)


def lookup_self(ctx: Ctx, _: Match) -> Result:
    return Result(data=ctx.core.tokens.lookup_data(_caller(ctx)))


def lookup(ctx: Ctx, _: Match) -> Result:
    token = as_str(ctx.data, "token")
    if not token:
        # DOC token.mdx: lookup without a token looks up the caller.
        return lookup_self(ctx, _)
    return Result(data=ctx.core.tokens.lookup_data(require_found(ctx.core.tokens.lookup(token))))


def lookup_accessor(ctx: Ctx, _: Match) -> Result:
    entry = ctx.core.tokens.by_accessor(as_str(ctx.data, "accessor"))
    if entry is None:
        raise bad_request("invalid accessor")
    data = ctx.core.tokens.lookup_data(entry)
    data["id"] = ""  # DOC: lookup by accessor never returns the token id
    return Result(data=data)


def renew_self(ctx: Ctx, _: Match) -> Result:
    entry = _caller(ctx)
    warnings = ctx.core.tokens.renew(entry, parse_duration(ctx.data.get("increment"), "increment"))
    return Result(auth=ctx.core.tokens.auth_block(entry), warnings=warnings or None)


def renew(ctx: Ctx, _: Match) -> Result:
    token = as_str(ctx.data, "token")
    if not token:
        raise bad_request("missing token ID")
    entry = ctx.core.tokens.lookup(token)
    if entry is None:
        raise bad_request("token not found")  # CODE token_store.go handleRenew
    warnings = ctx.core.tokens.renew(entry, parse_duration(ctx.data.get("increment"), "increment"))
    return Result(auth=ctx.core.tokens.auth_block(entry), warnings=warnings or None)


def renew_accessor(ctx: Ctx, _: Match) -> Result:
    entry = ctx.core.tokens.by_accessor(as_str(ctx.data, "accessor"))
    if entry is None:
        raise bad_request("invalid accessor")
    warnings = ctx.core.tokens.renew(entry, parse_duration(ctx.data.get("increment"), "increment"))
    auth = ctx.core.tokens.auth_block(entry)
    auth["client_token"] = ""  # DOC: accessor operations never reveal the token
    return Result(auth=auth, warnings=warnings or None)


def _revocable(entry: TokenEntry) -> TokenEntry:
    if entry.type == "batch":
        # DOC concepts/tokens.mdx: batch tokens "cannot be manually revoked".
        raise bad_request("batch tokens cannot be revoked")
    return entry


def revoke_self(ctx: Ctx, _: Match) -> None:
    ctx.core.tokens.revoke_tree(_revocable(_caller(ctx)))


def revoke(ctx: Ctx, _: Match) -> None:
    token = as_str(ctx.data, "token")
    if not token:
        raise bad_request("missing token")
    entry = ctx.core.tokens.lookup(token)
    if entry is not None:  # revoking an unknown token is not an error (204)
        ctx.core.tokens.revoke_tree(_revocable(entry))


def revoke_accessor(ctx: Ctx, _: Match) -> None:
    entry = ctx.core.tokens.by_accessor(as_str(ctx.data, "accessor"))
    if entry is None:
        raise bad_request("invalid accessor")
    ctx.core.tokens.revoke_tree(entry)


def revoke_orphan(ctx: Ctx, _: Match) -> None:
    entry = ctx.core.tokens.lookup(as_str(ctx.data, "token"))
    if entry is not None:
        ctx.core.tokens.revoke_orphan(_revocable(entry))


def list_accessors(ctx: Ctx, _: Match) -> Result:
    store = ctx.core.tokens
    store.purge_expired()
    return Result(data={"keys": sorted(store._accessors)})


# -- roles -----------------------------------------------------------------------------
def _role_name(m: Match) -> str:
    return m["role"].lower()


def role_exists(ctx: Ctx, m: Match) -> bool:
    return _role_name(m) in ctx.core.tokens.roles


def write_role(ctx: Ctx, m: Match) -> None:
    roles = ctx.core.tokens.roles
    name = _role_name(m)
    # Validate on a copy so that a bad request leaves the stored role untouched.
    candidate = dataclasses.replace(roles.get(name) or TokenRole(name=name))
    candidate.update(ctx.data, strict_batch_roles=ctx.core.tokens.strict_batch_roles)
    roles[name] = candidate


def read_role(ctx: Ctx, m: Match) -> Result | None:
    role = ctx.core.tokens.roles.get(_role_name(m))
    if role is None:
        raise not_found()
    return Result(data=role.to_dict())


def delete_role(ctx: Ctx, m: Match) -> None:
    ctx.core.tokens.roles.pop(_role_name(m), None)


def list_roles(ctx: Ctx, _: Match) -> Result:
    roles = sorted(ctx.core.tokens.roles)
    if not roles:
        raise not_found()
    return Result(data={"keys": roles})


class TokenBackend(Backend):
    type = "token"

    def paths(self) -> list[PathSpec]:
        return [
            spec("create", update=create),
            spec("create-orphan", update=create_orphan),
            spec("create/(?P<role>[^/]+)", update=create_with_role),
            spec("lookup-self", read=lookup_self, update=lookup_self),
            spec("lookup", update=lookup, read=lookup),
            spec("lookup-accessor", update=lookup_accessor),
            spec("renew-self", update=renew_self),
            spec("renew", update=renew),
            spec("renew-accessor", update=renew_accessor),
            spec("revoke-self", update=revoke_self),
            spec("revoke", update=revoke),
            spec("revoke-accessor", update=revoke_accessor),
            spec("revoke-orphan", update=revoke_orphan, sudo=("update",)),
            spec("accessors/?", list=list_accessors, sudo=("list",)),
            spec("roles/?", list=list_roles),
            spec(
                "roles/(?P<role>[^/]+)",
                existence=role_exists,
                read=read_role,
                update=write_role,
                delete=delete_role,
            ),
        ]
