"""keybroker's own Vault layout on the endpoint: the shipped policies, the site token role
and the robot AppRole behave as docs/contracts.md §2 and DESIGN.md's invariants require.

The policies come from `policies/vault/*.hcl` (via `broker.layout.policy_text`, moved to
a unique mount), the role body from `broker.layout.build_layout` (batch, orphan,
allowed_policies keybroker-site-read, explicit max TTL 15m, bound CIDRs). Vault
semantics: docs/facts/vault.md §1 (ACL), §3 (KV v2), §4.3 (token roles), §5 (AppRole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hvac
import pytest

from broker.layout import (
    BROKER_POLICY,
    POLICY_NAMES,
    ROBOT_READ_POLICY,
    SITE_BACKEND_POLICY,
    SITE_READ_POLICY,
    build_layout,
    policy_text,
)
from tests.devvault.conftest import RawHTTP
from tests.fixtures.vault import VaultEndpoint, unique_name

SITE_KEY = {"api_key": "site-key-0001", "secret": "site-secret"}
ROBOT_KEY = {"api_key": "robot-key-0001", "secret": "robot-secret"}


@dataclass
class Layout:
    mount: str
    policies: dict[str, str]  # shipped name -> name on this endpoint
    site_role: str


@pytest.fixture
def layout(root: hvac.Client) -> Iterator[Layout]:
    """The shipped layout under unique names, with one site and one robot key."""
    mount = unique_name("exchange-keys")
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    site_role = unique_name("keybroker-site")
    names = {name: unique_name(name) for name in POLICY_NAMES}
    for name, unique in names.items():
        # The broker may mint only through the site role: follow its unique name.
        text = policy_text(name, mount=mount).replace(
            '"auth/token/create/keybroker-site"', f'"auth/token/create/{site_role}"'
        )
        root.sys.create_or_update_acl_policy(unique, text)
    role = build_layout(mount=mount, site_token_cidrs=("127.0.0.0/8",)).site_token_role
    body = role.vault_payload()
    body["allowed_policies"] = [names[SITE_READ_POLICY]]
    root.write_data(f"auth/token/roles/{site_role}", data=body)
    kv = root.secrets.kv.v2
    kv.create_or_update_secret("site/acct1/binance", SITE_KEY, mount_point=mount)
    kv.create_or_update_secret("robot/acct1/binance", ROBOT_KEY, mount_point=mount)
    yield Layout(mount, names, site_role)
    root.auth.token.delete_role(site_role)
    for unique in names.values():
        root.sys.delete_acl_policy(unique)
    root.sys.disable_secrets_engine(mount)


def test_shipped_site_role_is_accepted_by_vault(root: hvac.Client) -> None:
    """CODE token_store.go tokenStoreRoleCreateUpdate refuses a batch role with an explicit
    max TTL; the shipped layout must not send one (the broker caps site-token TTLs)."""
    name = unique_name("keybroker-site")
    body = build_layout(site_token_cidrs=("127.0.0.0/8",)).site_token_role.vault_payload()
    try:
        root.write_data(f"auth/token/roles/{name}", data=body)
    finally:
        root.auth.token.delete_role(name)


def _read(client: hvac.Client, mount: str, path: str) -> dict:
    return client.secrets.kv.v2.read_secret_version(
        path, mount_point=mount, raise_on_deleted_version=True
    )["data"]["data"]


def _site_token(root: hvac.Client, layout: Layout, ttl: str = "5m") -> dict:
    return root.auth.token.create(role_name=layout.site_role, ttl=ttl)["auth"]


def test_site_role_mints_batch_orphan_tokens(root: hvac.Client, layout: Layout) -> None:
    auth = _site_token(root, layout)
    assert auth["token_type"] == "batch" and auth["orphan"] is True
    assert auth["renewable"] is False and auth["lease_duration"] == 300
    # token_no_default_policy: the site read policy and nothing else.
    assert auth["policies"] == [layout.policies[SITE_READ_POLICY]]
    # Vault does NOT apply a role's explicit max TTL to batch tokens (CODE token_store.go
    # handleCreateCommon: `if role != nil && te.Type != logical.TokenTypeBatch`), so the
    # 15m cap of docs/contracts.md §2 is the broker's job (400 for a longer ttl).
    assert _site_token(root, layout, ttl="1h")["lease_duration"] == 3600


def test_site_token_reads_site_keys_and_nothing_under_robot(
    root: hvac.Client, layout: Layout, client_for: Callable
) -> None:
    site = client_for(_site_token(root, layout)["client_token"])
    assert _read(site, layout.mount, "site/acct1/binance") == SITE_KEY
    with pytest.raises(hvac.exceptions.Forbidden):
        _read(site, layout.mount, "robot/acct1/binance")
    kv = site.secrets.kv.v2
    assert kv.list_secrets("site/acct1", mount_point=layout.mount)["data"]["keys"] == ["binance"]
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.list_secrets("robot/acct1", mount_point=layout.mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.create_or_update_secret("site/acct1/okx", {"api_key": "x"}, mount_point=layout.mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.read_secret_metadata("robot/acct1/binance", mount_point=layout.mount)


def test_site_token_from_wrong_network_is_403(
    root: hvac.Client, layout: Layout, client_for: Callable
) -> None:
    body = root.auth.token.read_role(layout.site_role)["data"]
    far_role = unique_name("keybroker-site-far")
    root.write_data(
        f"auth/token/roles/{far_role}",
        data={
            "allowed_policies": body["allowed_policies"],
            "orphan": True,
            "renewable": False,
            "token_type": "batch",
            "token_bound_cidrs": ["10.0.0.0/8"],
        },
    )
    try:
        token = root.auth.token.create(role_name=far_role, ttl="5m")["auth"]["client_token"]
        with pytest.raises(hvac.exceptions.Forbidden):
            _read(client_for(token), layout.mount, "site/acct1/binance")
    finally:
        root.auth.token.delete_role(far_role)


def test_exhausted_token_is_403(root: hvac.Client, layout: Layout, client_for: Callable) -> None:
    token = root.auth.token.create(
        policies=[layout.policies[SITE_READ_POLICY]], ttl="5m", num_uses=1
    )["auth"]["client_token"]
    client = client_for(token)
    assert _read(client, layout.mount, "site/acct1/binance") == SITE_KEY
    with pytest.raises(hvac.exceptions.Forbidden):
        _read(client, layout.mount, "site/acct1/binance")


def test_broker_writes_but_never_reads_key_data(
    root: hvac.Client, layout: Layout, client_for: Callable, http: RawHTTP
) -> None:
    broker_token = root.auth.token.create(policies=[layout.policies[BROKER_POLICY]], ttl="10m")[
        "auth"
    ]["client_token"]
    broker = client_for(broker_token)
    kv = broker.secrets.kv.v2
    written = kv.create_or_update_secret(
        "site/acct2/okx", {"api_key": "n"}, cas=0, mount_point=layout.mount
    )
    kv.create_or_update_secret(
        "site/acct2/okx", {"api_key": "m"}, cas=written["data"]["version"], mount_point=layout.mount
    )
    kv.update_metadata(
        "site/acct2/okx", custom_metadata={"status": "accepted"}, mount_point=layout.mount
    )
    meta = kv.read_secret_metadata("site/acct2/okx", mount_point=layout.mount)["data"]
    assert meta["current_version"] == 2 and meta["custom_metadata"] == {"status": "accepted"}
    kv.destroy_secret_versions("site/acct2/okx", versions=[1], mount_point=layout.mount)
    for path in ("site/acct2/okx", "robot/acct1/binance", "site/acct1/binance"):
        with pytest.raises(hvac.exceptions.Forbidden):
            _read(broker, layout.mount, path)
    # It mints no token at all: not through the site role (the site backend's own token
    # does that), not without a role.
    for path, body in (
        (f"auth/token/create/{layout.site_role}", {"ttl": "5m"}),
        ("auth/token/create", {"policies": ["default"]}),
    ):
        assert http("POST", path, token=broker_token, json=body).status_code == 403


def test_site_backend_mints_site_tokens_only_through_the_role(
    root: hvac.Client, layout: Layout, client_for: Callable, http: RawHTTP
) -> None:
    backend_token = root.auth.token.create(
        policies=[layout.policies[SITE_BACKEND_POLICY]], ttl="10m", no_default_policy=True
    )["auth"]["client_token"]
    minted = client_for(backend_token).auth.token.create(role_name=layout.site_role, ttl="5m")
    assert minted["auth"]["token_type"] == "batch"
    assert minted["auth"]["policies"] == [layout.policies[SITE_READ_POLICY]]
    assert _read(client_for(minted["auth"]["client_token"]), layout.mount, "site/acct1/binance")
    body = {"policies": [layout.policies[SITE_BACKEND_POLICY]]}
    assert http("POST", "auth/token/create", token=backend_token, json=body).status_code == 403


def test_robot_approle_reads_robot_keys_only(
    root: hvac.Client, layout: Layout, endpoint: VaultEndpoint
) -> None:
    approle = unique_name("approle")
    root.sys.enable_auth_method("approle", path=approle)
    try:
        robot_role = next(r for r in build_layout().approles if r.name == "keybroker-robot")
        body = robot_role.vault_payload()
        body["token_policies"] = [layout.policies[ROBOT_READ_POLICY]]
        root.write_data(f"auth/{approle}/role/keybroker-robot", data=body)
        role_id = root.auth.approle.read_role_id("keybroker-robot", mount_point=approle)
        secret = root.auth.approle.generate_secret_id("keybroker-robot", mount_point=approle)
        robot = hvac.Client(url=endpoint.addr)
        robot.auth.approle.login(
            role_id["data"]["role_id"], secret["data"]["secret_id"], mount_point=approle
        )
        assert _read(robot, layout.mount, "robot/acct1/binance") == ROBOT_KEY
        with pytest.raises(hvac.exceptions.Forbidden):
            _read(robot, layout.mount, "site/acct1/binance")
    finally:
        root.sys.disable_auth_method(approle)
