"""Escalation edges on a live Vault (devvault, or a real Vault when KEYBROKER_TEST_VAULT_*
is set): each edge kind the analysis counts really works, and the broker's real AppRole
login can take none of them.

The shipped layout is applied under unique names (tests/bootstrap/unique_layout.py), so
the attempts below are derived from the same routes the analysis follows
(`routes_for(layout)`): a route added for a new path is tried here without new code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.layout import (
    BROKER_APPROLE,
    ROBOT_READ_POLICY,
    SITE_BACKEND_APPROLE,
    SITE_READ_POLICY,
    SITE_TRANSIT_POLICY,
)
from policies.analysis.escalation import Reach, Route
from policies.analysis.routes import routes_for
from policies.hcl import parse_policy
from tests.bootstrap.unique_layout import UniqueLayout, remove_layout, unique_layout
from tests.fixtures.vault import VaultEndpoint, unique_name

SITE_KEY = {"api_key": "CANARY-site-key", "secret": "CANARY-site-secret"}
ROBOT_KEY = {"api_key": "CANARY-robot-key", "secret": "CANARY-robot-secret"}


@pytest.fixture
def shipped(vault_endpoint: VaultEndpoint) -> Iterator[UniqueLayout]:
    """The shipped layout applied under unique names, with one site and one robot key."""
    root = vault_endpoint.client()
    names = unique_layout(site_token_cidrs=("127.0.0.0/8",))
    apply_layout(root, names.layout)
    kv = root.secrets.kv.v2
    kv.create_or_update_secret("site/acct1/binance", SITE_KEY, mount_point=names.mount)
    kv.create_or_update_secret("robot/acct1/binance", ROBOT_KEY, mount_point=names.mount)
    yield names
    remove_layout(root, names)


def _login(endpoint: VaultEndpoint, role_id: str, secret_id: str = "") -> hvac.Client:
    client = hvac.Client(url=endpoint.addr)
    body = {"role_id": role_id} | ({"secret_id": secret_id} if secret_id else {})
    answer = requests.post(f"{endpoint.addr}/v1/auth/approle/login", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    client.token = answer.json()["auth"]["client_token"]
    return client


def _key(client: hvac.Client, names: UniqueLayout, path: str) -> dict:
    return client.secrets.kv.v2.read_secret_version(
        path, mount_point=names.mount, raise_on_deleted_version=True
    )["data"]["data"]


def _token(endpoint: VaultEndpoint, hcl: str, name: str = "") -> tuple[hvac.Client, str]:
    """A token holding one policy (`name`, or a fresh one) with `hcl`, no default policy."""
    root = endpoint.client()
    name = name or unique_name("edge")
    root.sys.create_or_update_acl_policy(name, hcl)
    token = root.auth.token.create(policies=[name], ttl="10m", no_default_policy=True)
    return endpoint.client(token["auth"]["client_token"]), name


def _concrete(pattern: str) -> str:
    """A request path matching a route pattern: `+` and a trailing `*` become a fresh name."""
    fresh = unique_name("x")
    return re.sub(r"\*$", fresh, "/".join(fresh if s == "+" else s for s in pattern.split("/")))


# --- the broker's identity takes no route ----------------------------------------------


def test_analysis_finds_no_route_from_the_broker_identity(shipped: UniqueLayout) -> None:
    """`policy check`'s closure on the layout as applied: the broker's token is all it has."""
    policies = [parse_policy(text, name=name) for name, text in shipped.layout.policies.items()]
    reach = Reach(policies, routes_for(shipped.layout))
    broker = shipped.layout.approle(shipped.approle[BROKER_APPROLE]).token_policies
    assert [c.via for c in reach.closure(broker)] == [()]
    # ...while the site backend's token reaches exactly the site token role.
    backend = shipped.layout.approle(shipped.approle[SITE_BACKEND_APPROLE]).token_policies
    (_own, site) = reach.closure(backend)
    site_policies = (SITE_READ_POLICY, SITE_TRANSIT_POLICY)
    assert site.policies == {shipped.policy[name] for name in site_policies}
    assert [hop.route.kind for hop in site.via] == ["token-role"]


def _attempts(route: Route, names: UniqueLayout) -> Iterator[tuple[str, str, dict]]:
    """(method, path, body) for every pattern of `route`, with a body that would make
    the request succeed if the ACL let it through."""
    site_read = names.policy[SITE_READ_POLICY]
    for pattern in route.patterns:
        path = _concrete(pattern)
        if route.kind == "raw-storage":
            yield "GET", path, {}
            continue
        body: dict = {
            "policies": [site_read],
            "allowed_policies": [site_read],
            "token_policies": [site_read],
            "ttl": "1m",
        }
        if route.kind == "policy-write":
            body = {"policy": 'path "*" { capabilities = ["read", "list"] }'}
        elif route.kind == "auth-method-write":
            body = {"type": "approle"}
        elif route.kind == "approle-secret-id" and path.endswith("/custom-secret-id"):
            body = {"secret_id": unique_name("custom")}
        elif route.kind == "approle-secret-id" and path.endswith("/bind-secret-id"):
            body = {"bind_secret_id": False}
        yield "POST", path, body


def test_broker_approle_login_can_take_no_route(
    vault_endpoint: VaultEndpoint, shipped: UniqueLayout
) -> None:
    """The broker's real AppRole login: every route the analysis knows (each token role,
    each AppRole's secret-id, sudo token creation, policy, role, auth method, identity
    and raw-storage writes) is refused, and no key data can be read, listed or patched."""
    root = vault_endpoint.client()
    creds = issue_approle_credentials(root, shipped.approle[BROKER_APPROLE])
    broker = _login(vault_endpoint, creds.role_id, creds.secret_id)
    tried = 0
    for route in routes_for(shipped.layout):
        for method, path, body in _attempts(route, shipped):
            answer = requests.request(
                method,
                f"{vault_endpoint.addr}/v1/{path}",
                json=body or None,
                headers={"X-Vault-Token": broker.token},
                timeout=10,
            )
            # 403: the ACL refused it. (404 only where Vault has no such endpoint at all,
            # e.g. sys/raw when raw storage access is disabled.)
            assert answer.status_code in (403, 404), (route.kind, path, answer.status_code)
            assert "CANARY" not in answer.text
            tried += 1
    assert tried >= 12
    # Without sudo, role-less creation may only copy the broker's own policies.
    answer = requests.post(
        f"{vault_endpoint.addr}/v1/auth/token/create",
        json={"policies": [shipped.policy[SITE_READ_POLICY]]},
        headers={"X-Vault-Token": broker.token},
        timeout=10,
    )
    assert answer.status_code in (400, 403)
    # And directly: no read, list or patch of key data or subkeys, for either role.
    for role in ("site", "robot"):
        for method, path in (
            ("GET", f"{shipped.mount}/data/{role}/acct1/binance"),
            ("GET", f"{shipped.mount}/subkeys/{role}/acct1/binance"),
            ("LIST", f"{shipped.mount}/data/{role}/acct1"),
            ("PATCH", f"{shipped.mount}/data/{role}/acct1/binance"),
        ):
            answer = requests.request(
                method,
                f"{vault_endpoint.addr}/v1/{path}",
                json={"data": {"x": "y"}} if method == "PATCH" else None,
                headers={
                    "X-Vault-Token": broker.token,
                    "Content-Type": "application/merge-patch+json",
                },
                timeout=10,
            )
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert "CANARY" not in answer.text


# --- each edge kind works as the analysis says -----------------------------------------


def test_token_role_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """update on auth/token/create/<role> -> a token with the role's allowed policies."""
    holder, _ = _token(
        vault_endpoint,
        f'path "auth/token/create/{shipped.site_role}" {{ capabilities = ["update"] }}',
    )
    minted = holder.auth.token.create(role_name=shipped.site_role, ttl="1m")["auth"]
    assert sorted(minted["policies"]) == sorted(
        shipped.policy[name] for name in (SITE_READ_POLICY, SITE_TRANSIT_POLICY)
    )
    site = vault_endpoint.client(minted["client_token"])
    assert _key(site, shipped, "site/acct1/binance") == SITE_KEY


@pytest.mark.parametrize("endpoint_name", ["secret-id", "custom-secret-id"])
def test_approle_secret_id_edge(
    vault_endpoint: VaultEndpoint, shipped: UniqueLayout, endpoint_name: str
) -> None:
    """update on auth/approle/role/<r>/secret-id (or custom-secret-id), plus the role-id
    (an identifier, not a secret) -> a login with the role's token policies."""
    robot_role = shipped.approle["keybroker-robot"]
    holder, _ = _token(
        vault_endpoint,
        f'path "auth/approle/role/{robot_role}/{endpoint_name}" {{ capabilities = ["update"] }}',
    )
    body = {"secret_id": unique_name("custom")} if endpoint_name == "custom-secret-id" else {}
    answer = holder.write_data(f"auth/approle/role/{robot_role}/{endpoint_name}", data=body)
    role_id = vault_endpoint.client().auth.approle.read_role_id(robot_role)["data"]["role_id"]
    robot = _login(vault_endpoint, role_id, answer["data"]["secret_id"])
    assert _key(robot, shipped, "robot/acct1/binance") == ROBOT_KEY


def test_sudo_token_creation_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """update alone on create-orphan: policies must be a subset of the caller's; with
    sudo, any policy."""
    robot_read = shipped.policy[ROBOT_READ_POLICY]
    plain, _ = _token(
        vault_endpoint, 'path "auth/token/create-orphan" { capabilities = ["update"] }'
    )
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset"):
        plain.write_data("auth/token/create-orphan", data={"policies": [robot_read]})
    sudo, _ = _token(
        vault_endpoint, 'path "auth/token/create-orphan" { capabilities = ["update", "sudo"] }'
    )
    minted = sudo.write_data("auth/token/create-orphan", data={"policies": [robot_read]})
    robot = vault_endpoint.client(minted["auth"]["client_token"])
    assert _key(robot, shipped, "robot/acct1/binance") == ROBOT_KEY


def test_policy_write_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """A write on sys/policies/acl/<p> where the holder's token carries p: the holder
    rewrites its own policy and holds anything (Vault reads policies on each request)."""
    name = unique_name("edge")
    own = f'path "sys/policies/acl/{name}" {{ capabilities = ["update"] }}'
    holder, _ = _token(vault_endpoint, own, name)
    with pytest.raises(hvac.exceptions.Forbidden):
        _key(holder, shipped, "site/acct1/binance")
    widened = own + f'\npath "{shipped.mount}/data/*" {{ capabilities = ["read"] }}\n'
    holder.sys.create_or_update_acl_policy(name, widened)
    assert _key(holder, shipped, "site/acct1/binance") == SITE_KEY


def test_approle_role_write_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """A write on auth/approle/role/<r> alone: the holder defines a role with any policy,
    its own role_id and no secret-id (bound to loopback), and logs in with the role-id."""
    role = unique_name("evil")
    holder, _ = _token(
        vault_endpoint, f'path "auth/approle/role/{role}" {{ capabilities = ["create", "update"] }}'
    )
    role_id = unique_name("role-id")
    holder.write_data(
        f"auth/approle/role/{role}",
        data={
            "token_policies": [shipped.policy[ROBOT_READ_POLICY]],
            "bind_secret_id": False,
            "secret_id_bound_cidrs": ["127.0.0.0/8"],
            "role_id": role_id,
        },
    )
    try:
        robot = _login(vault_endpoint, role_id)
        assert _key(robot, shipped, "robot/acct1/binance") == ROBOT_KEY
    finally:
        vault_endpoint.client().auth.approle.delete_role(role)


def test_token_role_write_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """A write on auth/token/roles/<r> sets the role's allowed policies to anything: whoever
    creates from it (here the writer itself) gets them."""
    role = unique_name("evil-role")
    holder, _ = _token(
        vault_endpoint,
        f'path "auth/token/roles/{role}" {{ capabilities = ["create", "update"] }}\n'
        f'path "auth/token/create/{role}" {{ capabilities = ["update"] }}\n',
    )
    holder.write_data(
        f"auth/token/roles/{role}", data={"allowed_policies": [shipped.policy[ROBOT_READ_POLICY]]}
    )
    try:
        minted = holder.auth.token.create(
            role_name=role, policies=[shipped.policy[ROBOT_READ_POLICY]], ttl="1m"
        )
        robot = vault_endpoint.client(minted["auth"]["client_token"])
        assert _key(robot, shipped, "robot/acct1/binance") == ROBOT_KEY
    finally:
        vault_endpoint.client().auth.token.delete_role(role)


def test_auth_method_write_edge(vault_endpoint: VaultEndpoint, shipped: UniqueLayout) -> None:
    """sudo + update on sys/auth/<path>: the holder mounts a method; with writes under its
    new path it defines a login with any policy."""
    path = unique_name("am")
    holder, _ = _token(
        vault_endpoint,
        f'path "sys/auth/{path}" {{ capabilities = ["create", "update", "sudo"] }}\n'
        f'path "auth/{path}/*" {{ capabilities = ["create", "update", "read"] }}\n',
    )
    holder.sys.enable_auth_method("approle", path=path)
    try:
        holder.write_data(
            f"auth/{path}/role/r", data={"token_policies": [shipped.policy[SITE_READ_POLICY]]}
        )
        role_id = holder.read(f"auth/{path}/role/r/role-id")["data"]["role_id"]
        secret_id = holder.write_data(f"auth/{path}/role/r/secret-id")["data"]["secret_id"]
        client = hvac.Client(url=vault_endpoint.addr)
        client.auth.approle.login(role_id, secret_id, mount_point=path)
        assert _key(client, shipped, "site/acct1/binance") == SITE_KEY
    finally:
        vault_endpoint.client().sys.disable_auth_method(path)


def test_lookup_and_unwrap_are_not_edges(vault_endpoint: VaultEndpoint) -> None:
    """Policy alone hands out no other token: lookup by accessor blanks the id, and
    unwrap needs the wrapping token itself (docs/facts/escalation.md §E6)."""
    root = vault_endpoint.client()
    victim = root.auth.token.create(policies=["default"], ttl="5m")["auth"]
    holder, _ = _token(
        vault_endpoint,
        'path "auth/token/lookup-accessor" { capabilities = ["update"] }\n'
        'path "sys/wrapping/unwrap" { capabilities = ["update"] }\n',
    )
    seen = holder.auth.token.lookup_accessor(victim["accessor"])["data"]
    assert seen["id"] == "" and victim["client_token"] not in str(seen)
