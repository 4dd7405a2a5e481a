"""The shipped layout (broker/layout.py) under unique names, for tests that share a Vault.

Every name apply_layout writes (mount, the five policies, the site token role, the
AppRoles) gets a unique suffix; policy texts and role bindings follow the new names, so
the layout behaves exactly as the shipped one. Only the approle/ auth method itself is
shared: it is one per Vault and apply_layout only enables it when absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions

from broker.layout import VaultLayout, build_layout
from tests.fixtures.vault import unique_name

SHIPPED_SITE_ROLE = "keybroker-site"


@dataclass(frozen=True)
class UniqueLayout:
    layout: VaultLayout
    policy: dict[str, str]  # shipped policy name -> name on this Vault
    approle: dict[str, str]  # shipped AppRole name -> name on this Vault

    @property
    def mount(self) -> str:
        return self.layout.mount

    @property
    def site_role(self) -> str:
        return self.layout.site_token_role.name


def unique_layout(**kwargs: Any) -> UniqueLayout:
    """build_layout(**kwargs) with every name made unique (a `mount` given is kept)."""
    kwargs.setdefault("mount", unique_name("exchange-keys"))
    kwargs.setdefault("transit_mount", unique_name("exchange-signing"))
    site_role = unique_name(SHIPPED_SITE_ROLE)
    base = build_layout(site_token_role_name=site_role, **kwargs)
    policy = {name: unique_name(name) for name in base.policies}
    # The broker policy may mint only through the site role: follow its unique name.
    texts = {
        policy[name]: text.replace(
            f'"auth/token/create/{SHIPPED_SITE_ROLE}"', f'"auth/token/create/{site_role}"'
        )
        for name, text in base.policies.items()
    }
    approle = {role.name: unique_name(role.name) for role in base.approles}
    layout = dataclasses.replace(
        base,
        policies=texts,
        site_token_role=dataclasses.replace(
            base.site_token_role,
            allowed_policies=tuple(policy[p] for p in base.site_token_role.allowed_policies),
        ),
        approles=tuple(
            dataclasses.replace(
                role,
                name=approle[role.name],
                token_policies=tuple(policy[p] for p in role.token_policies),
            )
            for role in base.approles
        ),
    )
    return UniqueLayout(layout, policy, approle)


def remove_layout(client: hvac.Client, unique: UniqueLayout) -> None:
    """Delete what apply_layout may have created for `unique` (the shared approle/ stays)."""
    for role in unique.approle.values():
        _ignore_missing(client.auth.approle.delete_role, role)
    _ignore_missing(client.auth.token.delete_role, unique.site_role)
    for name in unique.policy.values():
        client.sys.delete_acl_policy(name)
    mounts = client.sys.list_mounted_secrets_engines()
    mounts = mounts.get("data", mounts)
    if mounts.get(f"{unique.mount}/", {}).get("type") == "kv":
        client.sys.disable_secrets_engine(unique.mount)
    if mounts.get(f"{unique.layout.transit_mount}/", {}).get("type") == "transit":
        client.sys.disable_secrets_engine(unique.layout.transit_mount)


def _ignore_missing(call: Any, name: str) -> None:
    # Never created (e.g. apply_layout stopped at a conflict): nothing to remove.
    with contextlib.suppress(hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest):
        call(name)
