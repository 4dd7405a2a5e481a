"""The escalation routes Vault offers, as data (docs/facts/escalation.md, §E1-§E7).

Generic routes hold for any Vault: writing a policy, a role definition, an auth method
or an identity entity, creating tokens with sudo, reading raw storage. Layout routes
come from broker/layout.py (its token roles and AppRoles, with their settings): nothing
here restates a role name or a policy list.

What is NOT a route, and why (docs/facts/escalation.md §E6): `update` on
`auth/token/create` or `auth/token/create-orphan` without sudo (the new token's policies
must be a subset of the caller's), `sys/wrapping/unwrap` and `auth/token/lookup` (they
need the other token itself, which no policy hands out), `auth/token/lookup-accessor`
(Vault blanks the token id in its answer).
"""

from __future__ import annotations

from broker.layout import APPROLE_MOUNT, AppRole, TokenRole, VaultLayout
from policies.analysis.escalation import Route

_FACTS = "docs/facts/escalation.md"
_WRITE: tuple[tuple[str, ...], ...] = (("create",), ("update",))

GENERIC_ROUTES: tuple[Route, ...] = (
    Route(
        kind="token-create-sudo",
        label="token creation with sudo",
        patterns=("auth/token/create", "auth/token/create-orphan"),
        needs=(("update", "sudo"),),
        gains=None,
        doc=f"{_FACTS} §E2 (api-docs/auth/token.mdx; vault/token_store.go handleCreateCommon)",
        notes=("with sudo the new token may hold any policy but root",),
    ),
    Route(
        kind="token-role-write",
        label="token role definition",
        patterns=("auth/token/roles/+",),
        needs=_WRITE,
        gains=None,
        doc=f"{_FACTS} §E4 (api-docs/auth/token.mdx, create/update token role)",
    ),
    Route(
        kind="approle-role-write",
        label="AppRole role definition",
        patterns=(f"auth/{APPROLE_MOUNT}/role/+", f"auth/{APPROLE_MOUNT}/role/+/policies"),
        needs=_WRITE,
        gains=None,
        doc=f"{_FACTS} §E4 (api-docs/auth/approle.mdx; builtin/credential/approle/path_role.go)",
    ),
    Route(
        kind="policy-write",
        label="ACL policy write",
        patterns=("sys/policy/+", "sys/policies/acl/+"),
        needs=_WRITE,
        gains=None,
        doc=f"{_FACTS} §E4 (api-docs/system/policy.mdx, policies.mdx)",
    ),
    Route(
        kind="auth-method-write",
        label="auth method enable",
        patterns=("sys/auth/*",),
        needs=(("update", "sudo"), ("create", "sudo")),
        gains=None,
        doc=f"{_FACTS} §E4 (api-docs/system/auth.mdx: sudo-protected)",
    ),
    Route(
        kind="identity-write",
        label="identity entity or group write",
        patterns=("identity/entity*", "identity/group*"),
        needs=_WRITE,
        gains=None,
        doc=f"{_FACTS} §E4 (api-docs/secret/identity/entity.mdx, group.mdx: `policies`)",
    ),
    Route(
        kind="raw-storage",
        label="raw storage access",
        patterns=("sys/raw/*",),
        needs=(("read", "sudo"), ("update", "sudo"), ("create", "sudo")),
        gains=None,
        doc=f"{_FACTS} §E5 (api-docs/system/raw.mdx: token entries and policies in storage)",
    ),
)


def _cidr_note(what: str, cidrs: tuple[str, ...]) -> tuple[str, ...]:
    if not cidrs:
        return ()
    return (f"{what} bound to {', '.join(cidrs)}: limits where, not who",)


def token_role_route(role: TokenRole) -> Route:
    return Route(
        kind="token-role",
        label=f"token role {role.name}",
        patterns=(f"auth/token/create/{role.name}",),
        needs=(("update",),),
        gains=role.allowed_policies,
        doc=f"{_FACTS} §E1 (api-docs/auth/token.mdx; vault/token_store.go handleCreateCommon)",
        notes=(
            f"{role.token_type} token, {'orphan' if role.orphan else 'child'}",
            *_cidr_note("tokens", role.bound_cidrs),
        ),
    )


def approle_route(role: AppRole) -> Route:
    base = f"auth/{APPROLE_MOUNT}/role/{role.name}"
    return Route(
        kind="approle-secret-id",
        label=f"AppRole {role.name} secret-id",
        patterns=(f"{base}/secret-id", f"{base}/custom-secret-id", f"{base}/bind-secret-id"),
        needs=(("update",),),
        gains=role.token_policies,
        doc=f"{_FACTS} §E3 (api-docs/auth/approle.mdx; builtin/credential/approle/path_role.go)",
        notes=(
            "the role-id is an identifier, not a secret",
            *_cidr_note("secret-ids", role.secret_id_bound_cidrs),
            *_cidr_note("tokens", role.token_bound_cidrs),
        ),
    )


def routes_for(layout: VaultLayout) -> tuple[Route, ...]:
    """Every route in a Vault that holds `layout`: its own roles, then the generic ones."""
    return (
        *(token_role_route(r) for r in layout.token_roles),
        *(approle_route(r) for r in layout.approles),
        *GENERIC_ROUTES,
    )
