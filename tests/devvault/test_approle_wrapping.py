"""AppRole and response wrapping.

Sources: DOC api-docs/auth/approle.mdx (docs/facts/vault.md §5); DOC
concepts/response-wrapping.mdx and api-docs/system/wrapping-*.mdx (§4.4, §4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import hvac
import pytest

from tests.devvault.conftest import RawHTTP
from tests.fixtures.vault import unique_name


@pytest.fixture
def approle(root: hvac.Client) -> Iterator[str]:
    """A fresh AppRole auth mount; its path is yielded."""
    path = unique_name("approle")
    root.sys.enable_auth_method("approle", path=path)
    yield path
    root.sys.disable_auth_method(path)


def _role(root: hvac.Client, mount: str, **settings: object) -> tuple[str, str]:
    name = unique_name("r")
    root.write_data(f"auth/{mount}/role/{name}", data=settings)
    role_id = root.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
    return name, role_id


def test_role_crud(root: hvac.Client, approle: str) -> None:
    name, role_id = _role(
        root,
        approle,
        token_policies=["default"],
        token_ttl="10m",
        token_max_ttl="1h",
        secret_id_ttl="5m",
        secret_id_num_uses=2,
    )
    data = root.auth.approle.read_role(name, mount_point=approle)["data"]
    assert data["token_ttl"] == 600 and data["token_max_ttl"] == 3600
    assert data["secret_id_ttl"] == 300 and data["secret_id_num_uses"] == 2
    assert data["token_policies"] == ["default"] and data["bind_secret_id"] is True
    assert role_id
    assert name in root.auth.approle.list_roles(mount_point=approle)["data"]["keys"]
    root.auth.approle.delete_role(name, mount_point=approle)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.approle.read_role(name, mount_point=approle)


def test_login_issues_token_with_role_policies(
    root: hvac.Client, approle: str, make_policy: Callable, endpoint
) -> None:
    policy = make_policy('path "x/*" { capabilities = ["read"] }')
    name, role_id = _role(root, approle, token_policies=[policy], token_ttl="10m")
    secret = root.auth.approle.generate_secret_id(name, mount_point=approle)["data"]
    assert secret["secret_id"] and secret["secret_id_accessor"]
    client = hvac.Client(url=endpoint.addr)
    auth = client.auth.approle.login(role_id, secret["secret_id"], mount_point=approle)["auth"]
    assert auth["policies"] == sorted(["default", policy])
    assert auth["lease_duration"] == 600
    assert auth["metadata"]["role_name"] == name
    assert client.auth.token.lookup_self()["data"]["path"] == f"auth/{approle}/login"


def test_login_with_bad_secret_id_is_400(root: hvac.Client, approle: str, endpoint) -> None:
    _, role_id = _role(root, approle, token_policies=["default"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=endpoint.addr).auth.approle.login(
            role_id, "not-a-secret-id", mount_point=approle
        )


def test_secret_id_num_uses(root: hvac.Client, approle: str, endpoint) -> None:
    name, role_id = _role(root, approle, token_policies=["default"], secret_id_num_uses=1)
    secret_id = root.auth.approle.generate_secret_id(name, mount_point=approle)["data"]["secret_id"]
    client = hvac.Client(url=endpoint.addr)
    client.auth.approle.login(role_id, secret_id, mount_point=approle)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.auth.approle.login(role_id, secret_id, mount_point=approle)


def test_secret_id_cidr_mismatch(root: hvac.Client, approle: str, endpoint) -> None:
    """Tests reach Vault from 127.0.0.1; a secret-id bound to 10.0.0.0/8 cannot log in."""
    name, role_id = _role(root, approle, token_policies=["default"])
    secret_id = root.auth.approle.generate_secret_id(
        name, cidr_list=["10.0.0.0/8"], mount_point=approle
    )["data"]["secret_id"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="unauthorized through CIDR"):
        hvac.Client(url=endpoint.addr).auth.approle.login(role_id, secret_id, mount_point=approle)


def test_wrapped_secret_id(root: hvac.Client, approle: str, endpoint) -> None:
    name, role_id = _role(root, approle, token_policies=["default"])
    wrapped = root.auth.approle.generate_secret_id(name, wrap_ttl="60s", mount_point=approle)
    info = wrapped["wrap_info"]
    assert wrapped["data"] is None  # only wrap_info when wrapped (§4.1)
    assert info["ttl"] == 60 and info["creation_path"] == f"auth/{approle}/role/{name}/secret-id"
    unwrapped = hvac.Client(url=endpoint.addr, token=info["token"]).sys.unwrap()
    secret_id = unwrapped["data"]["secret_id"]
    login = hvac.Client(url=endpoint.addr).auth.approle.login(
        role_id, secret_id, mount_point=approle
    )
    assert login["auth"]["client_token"]


# -- response wrapping (§4.4) ---------------------------------------------------------
def test_wrap_lookup_unwrap_single_use(root: hvac.Client, http: RawHTTP) -> None:
    wrapped = http(
        "POST",
        "auth/token/create",
        json={"policies": ["default"], "ttl": "5m"},
        headers={"X-Vault-Wrap-TTL": "2m"},
    ).json()
    assert wrapped["auth"] is None and wrapped["data"] is None
    info = wrapped["wrap_info"]
    assert info["ttl"] == 120 and info["creation_path"] == "auth/token/create"
    assert info["wrapped_accessor"]
    looked = root.write_data("sys/wrapping/lookup", data={"token": info["token"]})
    assert looked["data"]["creation_ttl"] == 120
    unwrapped = root.sys.unwrap(info["token"])
    assert unwrapped["auth"]["client_token"].startswith("hvs.")
    assert unwrapped["auth"]["accessor"] == info["wrapped_accessor"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="wrapping token is not valid"):
        root.sys.unwrap(info["token"])


def test_wrapping_ttl_enforced_by_policy(
    root: hvac.Client, make_policy: Callable, client_for: Callable, http: RawHTTP
) -> None:
    """§1.6: min/max_wrapping_ttl are checked at ACL time."""
    policy = make_policy(
        'path "auth/token/create" {\n  capabilities = ["update"]\n'
        '  min_wrapping_ttl = "30s"\n  max_wrapping_ttl = "5m"\n}'
    )
    token = root.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"]
    plain = http("POST", "auth/token/create", token=token, json={"ttl": "1m"})
    assert plain.status_code == 403
    too_long = http(
        "POST",
        "auth/token/create",
        token=token,
        json={"ttl": "1m"},
        headers={"X-Vault-Wrap-TTL": "10m"},
    )
    assert too_long.status_code == 403
    ok = http(
        "POST",
        "auth/token/create",
        token=token,
        json={"ttl": "1m"},
        headers={"X-Vault-Wrap-TTL": "1m"},
    )
    assert ok.status_code == 200 and ok.json()["wrap_info"]["ttl"] == 60


def test_secret_id_lookup_and_destroy_by_accessor(
    root: hvac.Client, approle: str, endpoint
) -> None:
    name, role_id = _role(root, approle, token_policies=["default"])
    secret = root.auth.approle.generate_secret_id(
        name, metadata={"host": "robot-1"}, mount_point=approle
    )["data"]
    looked = root.auth.approle.read_secret_id(name, secret["secret_id"], mount_point=approle)
    assert looked["data"]["metadata"] == {"host": "robot-1"}
    assert looked["data"]["secret_id_accessor"] == secret["secret_id_accessor"]
    root.auth.approle.destroy_secret_id_accessor(
        name, secret["secret_id_accessor"], mount_point=approle
    )
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=endpoint.addr).auth.approle.login(
            role_id, secret["secret_id"], mount_point=approle
        )


def test_custom_role_id(root: hvac.Client, approle: str) -> None:
    name, _ = _role(root, approle, token_policies=["default"])
    root.auth.approle.update_role_id(name, "my-role-id", mount_point=approle)
    assert root.auth.approle.read_role_id(name, mount_point=approle)["data"]["role_id"] == (
        "my-role-id"
    )
