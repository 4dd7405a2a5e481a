"""Token auth: create, roles, lookup, renew, revoke, batch tokens, limits.

Source: DOC api-docs/auth/token.mdx and concepts/tokens.mdx, CODE token_store.go
`handleCreateCommon`, as summarised in docs/facts/vault.md §4.3; error codes §4.2.
"""

from __future__ import annotations

from collections.abc import Callable

import hvac
import pytest

from tests.devvault.conftest import RawHTTP
from tests.fixtures.vault import unique_name


def _token(client: hvac.Client, **kwargs: object) -> dict:
    return client.auth.token.create(**kwargs)["auth"]


# -- create ---------------------------------------------------------------------------
def test_create_service_token_auth_block(root: hvac.Client, make_policy: Callable) -> None:
    policy = make_policy('path "a/*" { capabilities = ["read"] }')
    auth = _token(root, policies=[policy], ttl="10m", meta={"who": "test"})
    assert auth["client_token"].startswith("hvs.")  # §4.3 token prefixes
    assert auth["accessor"]
    assert auth["policies"] == sorted(["default", policy])  # default added, sorted
    assert auth["token_type"] == "service"
    assert auth["orphan"] is False
    assert auth["renewable"] is True
    assert auth["lease_duration"] == 600
    assert auth["metadata"] == {"who": "test"}


def test_no_default_policy(root: hvac.Client, make_policy: Callable) -> None:
    policy = make_policy('path "a/*" { capabilities = ["read"] }')
    auth = _token(root, policies=[policy], no_default_policy=True, ttl="1m")
    assert auth["policies"] == [policy]


def test_child_inherits_parent_policies(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    policy = make_policy('path "auth/token/create" { capabilities = ["update"] }')
    parent = client_for(_token(root, policies=[policy], ttl="10m")["client_token"])
    child = _token(parent, ttl="1m")
    assert child["policies"] == sorted(["default", policy])
    assert child["orphan"] is False


def test_child_policies_must_be_subset_of_parent(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    creator = make_policy('path "auth/token/create" { capabilities = ["update"] }')
    other = make_policy('path "b/*" { capabilities = ["read"] }')
    parent = client_for(_token(root, policies=[creator], ttl="10m")["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset of parent"):
        _token(parent, policies=[other], ttl="1m")


def test_orphan_needs_sudo_but_create_orphan_endpoint_does_not(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    creator = make_policy(
        'path "auth/token/create" { capabilities = ["update"] }\n'
        'path "auth/token/create-orphan" { capabilities = ["update"] }'
    )
    parent = client_for(_token(root, policies=[creator], ttl="10m")["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="orphan"):
        _token(parent, no_parent=True, ttl="1m")
    assert parent.auth.token.create_orphan(ttl="1m")["auth"]["orphan"] is True


def test_batch_token_shape_and_limits(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], type="batch", ttl="5m")
    assert auth["client_token"].startswith("hvb.")
    assert auth["token_type"] == "batch"
    assert auth["renewable"] is False
    assert auth["accessor"] == ""
    batch = client_for(auth["client_token"])
    assert batch.auth.token.lookup_self()["data"]["type"] == "batch"
    # DOC concepts/tokens.mdx: batch tokens cannot create tokens.
    with pytest.raises((hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden)):
        _token(batch, ttl="1m")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="batch tokens cannot have"):
        _token(root, policies=["default"], type="batch", num_uses=3)


def test_explicit_max_ttl_caps_ttl(root: hvac.Client) -> None:
    auth = _token(root, policies=["default"], ttl="1h", explicit_max_ttl="10m")
    assert auth["lease_duration"] == 600


# -- lookup ---------------------------------------------------------------------------
def test_lookup_self_fields(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], ttl="10m", num_uses=5, display_name="web")
    data = client_for(auth["client_token"]).auth.token.lookup_self()["data"]
    for key in (
        "accessor",
        "creation_time",
        "creation_ttl",
        "display_name",
        "entity_id",
        "expire_time",
        "explicit_max_ttl",
        "id",
        "issue_time",
        "meta",
        "num_uses",
        "orphan",
        "path",
        "policies",
        "renewable",
        "ttl",
        "type",
    ):
        assert key in data, key
    assert data["id"] == auth["client_token"]
    assert data["creation_ttl"] == 600 and 0 < data["ttl"] <= 600
    assert data["display_name"] == "token-web"
    assert data["num_uses"] == 4  # the lookup itself used one
    assert data["path"] == "auth/token/create"


def test_lookup_other_token_and_by_accessor(root: hvac.Client) -> None:
    auth = _token(root, policies=["default"], ttl="10m")
    assert root.auth.token.lookup(auth["client_token"])["data"]["id"] == auth["client_token"]
    by_accessor = root.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert by_accessor["accessor"] == auth["accessor"]
    assert by_accessor["id"] == ""  # DOC: never returned by accessor lookups


def test_lookup_of_unknown_token_is_403(root: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        root.auth.token.lookup("hvs.doesnotexistatall")


# -- renew ----------------------------------------------------------------------------
def test_renew_self(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], ttl="10m", explicit_max_ttl="1h")
    client = client_for(auth["client_token"])
    renewed = client.auth.token.renew_self(increment="30m")["auth"]
    assert renewed["lease_duration"] == 1800
    renewed = client.auth.token.renew_self(increment="2h")["auth"]
    assert 3500 <= renewed["lease_duration"] <= 3600  # capped by explicit max TTL


def test_non_renewable_token_cannot_renew(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], ttl="10m", renewable=False)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client_for(auth["client_token"]).auth.token.renew_self()


# -- revoke ---------------------------------------------------------------------------
def test_revoke_self(root: hvac.Client, client_for: Callable) -> None:
    client = client_for(_token(root, policies=["default"], ttl="10m")["client_token"])
    client.auth.token.revoke_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_revoke_revokes_children(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    creator = make_policy('path "auth/token/create" { capabilities = ["update"] }')
    parent_auth = _token(root, policies=[creator], ttl="10m")
    child_auth = _token(client_for(parent_auth["client_token"]), ttl="5m")
    orphan_auth = root.auth.token.create_orphan(policies=["default"], ttl="5m")["auth"]
    root.auth.token.revoke(parent_auth["client_token"])
    for token in (parent_auth["client_token"], child_auth["client_token"]):
        with pytest.raises(hvac.exceptions.Forbidden):
            client_for(token).auth.token.lookup_self()
    assert client_for(orphan_auth["client_token"]).auth.token.lookup_self()["data"]["orphan"]


def test_batch_child_stops_working_with_parent(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    """docs/facts/vault.md §4.3 (DOC concepts/tokens.mdx): a non-orphan batch token
    "Stops Working" when its parent is revoked."""
    creator = make_policy('path "auth/token/create" { capabilities = ["update"] }')
    parent = _token(root, policies=[creator], ttl="1h")["client_token"]
    child = _token(client_for(parent), type="batch", ttl="10m")["client_token"]
    assert client_for(child).auth.token.lookup_self()["data"]["type"] == "batch"
    root.auth.token.revoke(parent)
    with pytest.raises(hvac.exceptions.Forbidden):
        client_for(child).auth.token.lookup_self()


def test_revoke_accessor(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], ttl="10m")
    root.auth.token.revoke_accessor(auth["accessor"])
    with pytest.raises(hvac.exceptions.Forbidden):
        client_for(auth["client_token"]).auth.token.lookup_self()


# -- num_uses (DOC token.mdx num_uses; uses are counted even on denial) -----------------
def test_num_uses_exhaust_the_token(root: hvac.Client, client_for: Callable) -> None:
    auth = _token(root, policies=["default"], ttl="10m", num_uses=2)
    client = client_for(auth["client_token"])
    client.auth.token.lookup_self()
    client.auth.token.lookup_self()
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_restricted_use_token_cannot_create_children(
    root: hvac.Client, make_policy: Callable, client_for: Callable
) -> None:
    creator = make_policy('path "auth/token/create" { capabilities = ["update"] }')
    client = client_for(_token(root, policies=[creator], ttl="10m", num_uses=5)["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="restricted use token"):
        _token(client, ttl="1m")


# -- token roles --------------------------------------------------------------------
def test_role_crud(root: hvac.Client, make_role: Callable) -> None:
    name = make_role(
        allowed_policies=["a", "b"],
        orphan=True,
        renewable=False,
        token_type="batch",
        token_bound_cidrs=["127.0.0.1/32"],
    )
    data = root.auth.token.read_role(name)["data"]
    assert data["allowed_policies"] == ["a", "b"]
    assert data["orphan"] is True and data["renewable"] is False
    assert data["token_type"] == "batch"
    assert data["token_bound_cidrs"] == ["127.0.0.1"] or data["token_bound_cidrs"] == [
        "127.0.0.1/32"
    ]
    assert name in root.auth.token.list_roles()["data"]["keys"]
    root.auth.token.delete_role(name)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.token.read_role(name)


def test_role_default_token_type(root: hvac.Client, make_role: Callable) -> None:
    name = make_role(allowed_policies=["a"])
    assert root.auth.token.read_role(name)["data"]["token_type"] == "default-service"


def test_role_allowed_policies_decide(
    root: hvac.Client, make_role: Callable, make_policy: Callable
) -> None:
    allowed = make_policy('path "x/*" { capabilities = ["read"] }')
    other = make_policy('path "y/*" { capabilities = ["read"] }')
    role = make_role(allowed_policies=[allowed])
    auth = _token(root, role_name=role, ttl="1m")
    assert auth["policies"] == sorted(["default", allowed])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="allowed policies"):
        _token(root, role_name=role, policies=[other], ttl="1m")


def test_role_batch_orphan_token(
    root: hvac.Client, make_role: Callable, make_policy: Callable
) -> None:
    policy = make_policy('path "x/*" { capabilities = ["read"] }')
    role = make_role(
        allowed_policies=[policy],
        orphan=True,
        renewable=False,
        token_type="batch",
    )
    auth = _token(root, role_name=role, ttl="5m")
    assert auth["token_type"] == "batch" and auth["orphan"] is True
    assert auth["renewable"] is False and auth["lease_duration"] == 300
    assert _token(root, role_name=role, ttl="1h")["lease_duration"] == 3600


@pytest.mark.parametrize(
    ("settings", "what"),
    [
        ({"orphan": False, "renewable": False}, "non-orphan tokens"),
        ({"orphan": True}, "renewable tokens"),  # renewable defaults to true
        ({"orphan": True, "renewable": False, "token_period": "1h"}, "periodic tokens"),
        (
            {"orphan": True, "renewable": False, "token_explicit_max_ttl": "15m"},
            "tokens with an explicit max TTL",
        ),
    ],
)
def test_what_a_batch_role_cannot_be(root: hvac.Client, settings: dict, what: str) -> None:
    """CODE token_store.go tokenStoreRoleCreateUpdate: batch roles must be orphan, not
    renewable, not periodic and without an explicit max TTL (which Vault would not apply
    to batch tokens anyway: handleCreateCommon skips it for batch tokens)."""
    name = unique_name("batchrole")
    body = {"allowed_policies": ["default"], "token_type": "batch", **settings}
    with pytest.raises(hvac.exceptions.InvalidRequest, match=f"role is set to generate {what}"):
        root.write_data(f"auth/token/roles/{name}", data=body)


def test_role_explicit_max_ttl_caps_service_tokens(
    root: hvac.Client, make_role: Callable, make_policy: Callable
) -> None:
    policy = make_policy('path "x/*" { capabilities = ["read"] }')
    role = make_role(allowed_policies=[policy], token_explicit_max_ttl="15m")
    created = root.auth.token.create(role_name=role, ttl="1h")
    assert created["auth"]["lease_duration"] == 900
    assert any("capped" in w for w in created["warnings"] or [])


def test_bound_cidrs_mismatch_is_403(
    root: hvac.Client, make_role: Callable, client_for: Callable
) -> None:
    """Tests reach Vault from 127.0.0.1: a token bound to 10.0.0.0/8 must be refused."""
    far = make_role(allowed_policies=["default"], token_bound_cidrs=["10.0.0.0/8"])
    near = make_role(allowed_policies=["default"], token_bound_cidrs=["127.0.0.0/8"])
    far_token = _token(root, role_name=far, ttl="5m")["client_token"]
    near_token = _token(root, role_name=near, ttl="5m")["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        client_for(far_token).auth.token.lookup_self()
    assert client_for(near_token).auth.token.lookup_self()["data"]["id"] == near_token


def test_create_with_unknown_role_is_400(root: hvac.Client, http: RawHTTP) -> None:
    resp = http("POST", "auth/token/create/no-such-role-xyz", json={})
    assert resp.status_code == 400


def test_periodic_token_renews_to_its_period(root: hvac.Client, client_for: Callable) -> None:
    """DOC concepts/tokens.mdx "Periodic tokens": TTL = period, reset on every renewal."""
    auth = _token(root, policies=["default"], period="30m")
    assert auth["lease_duration"] == 1800
    client = client_for(auth["client_token"])
    assert client.auth.token.lookup_self()["data"]["period"] == 1800
    assert client.auth.token.renew_self(increment="5m")["auth"]["lease_duration"] == 1800


def test_renew_by_accessor_and_batch_tokens_cannot_renew(
    root: hvac.Client, client_for: Callable
) -> None:
    auth = _token(root, policies=["default"], ttl="10m")
    renewed = root.auth.token.renew_accessor(auth["accessor"], increment="20m")["auth"]
    assert renewed["lease_duration"] == 1200 and renewed["client_token"] == ""
    batch = _token(root, policies=["default"], type="batch", ttl="5m")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="batch tokens cannot be renewed"):
        client_for(batch["client_token"]).auth.token.renew_self()
