"""sys/ endpoints and the request pipeline, as Vault's docs give them.

Sources: docs/facts/vault.md §1.3 (HTTP -> operation, 405/415), §4.1 (envelope,
HTTPSysInjector), §4.2 (error bodies and codes), §4.5 (health, mounts, policies,
capabilities); DOC api-docs/system/*.mdx.
"""

from __future__ import annotations

import http.client as http_client
from collections.abc import Callable
from urllib.parse import urlsplit

import hvac
import pytest

from tests.devvault.conftest import RawHTTP
from tests.fixtures.vault import unique_name


# -- health, seal-status, init (DOC system/health.mdx, seal-status.mdx, init.mdx) -------
def test_health_active_is_200_with_documented_fields(http: RawHTTP) -> None:
    resp = http("GET", "sys/health", token="")
    assert resp.status_code == 200
    body = resp.json()
    for key in ("initialized", "sealed", "standby", "version", "cluster_id", "server_time_utc"):
        assert key in body
    assert body["initialized"] is True and body["sealed"] is False


def test_health_head_and_activecode_override(http: RawHTTP) -> None:
    assert http("HEAD", "sys/health", token="").status_code == 200
    assert http("GET", "sys/health?activecode=299", token="").status_code == 299


def test_seal_status_and_init_status_need_no_token(http: RawHTTP) -> None:
    status = http("GET", "sys/seal-status", token="").json()
    assert status["sealed"] is False and status["initialized"] is True
    assert {"t", "n", "progress", "type", "version"} <= set(status)
    assert http("GET", "sys/init", token="").json() == {"initialized": True}


def test_init_again_is_refused(http: RawHTTP) -> None:
    resp = http("PUT", "sys/init", token="", json={"secret_shares": 1, "secret_threshold": 1})
    assert resp.status_code == 400
    assert "already initialized" in resp.json()["errors"][0]


# -- errors and the HTTP -> operation mapping (docs/facts/vault.md §1.3, §4.2) ------------
def test_missing_or_unknown_token_is_403_permission_denied(http: RawHTTP) -> None:
    for token in ("", "hvs.doesnotexist"):
        resp = http("GET", "sys/mounts", token=token)
        assert resp.status_code == 403
        assert "permission denied" in resp.json()["errors"][0]


def test_bearer_header_is_accepted(http: RawHTTP) -> None:
    token = http.endpoint.root_token
    resp = http(
        "GET", "auth/token/lookup-self", token="", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    assert resp.json()["data"]["policies"] == ["root"]


def test_patch_without_merge_patch_content_type_is_415(http: RawHTTP, mount: str) -> None:
    resp = http("PATCH", f"{mount}/data/x", json={"data": {"a": "b"}})
    assert resp.status_code == 415
    assert resp.json()["errors"][0].startswith(
        "PATCH requires Content-Type of application/merge-patch+json"
    )


def test_unsupported_operation_is_405(http: RawHTTP) -> None:
    resp = http("DELETE", "sys/mounts")
    assert resp.status_code == 405
    assert "errors" in resp.json()


def test_unknown_path_is_404(http: RawHTTP) -> None:
    resp = http("GET", f"{unique_name('nomount')}/foo")
    assert resp.status_code == 404
    assert isinstance(resp.json()["errors"], list)


def test_malformed_json_is_400(http: RawHTTP) -> None:
    resp = http(
        "POST",
        "sys/policies/acl/x",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400


# -- mounts (DOC system/mounts.mdx) ------------------------------------------------------
def test_mounts_list_kv_v2_and_transit(root: hvac.Client) -> None:
    kv, transit = unique_name("kv"), unique_name("transit")
    root.sys.enable_secrets_engine("kv", path=kv, options={"version": "2"})
    root.sys.enable_secrets_engine("transit", path=transit)
    try:
        mounts = root.sys.list_mounted_secrets_engines()
        # HTTPSysInjector: data keys are also at the top level (§4.1).
        assert mounts[f"{kv}/"]["type"] == "kv"
        assert mounts["data"][f"{kv}/"]["options"] == {"version": "2"}
        assert mounts["data"][f"{transit}/"]["type"] == "transit"
        assert mounts["data"]["cubbyhole/"]["type"] == "cubbyhole"
        assert mounts["data"]["sys/"]["type"] == "system"
    finally:
        root.sys.disable_secrets_engine(kv)
        root.sys.disable_secrets_engine(transit)
    assert f"{kv}/" not in root.sys.list_mounted_secrets_engines()["data"]


def test_mount_path_in_use_is_400(root: hvac.Client, mount: str) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="path is already in use"):
        root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})


def test_token_auth_method_is_listed(root: hvac.Client) -> None:
    assert root.sys.list_auth_methods()["data"]["token/"]["type"] == "token"


# -- ACL policies (DOC system/policies.mdx, §1.8) ----------------------------------------
def test_acl_policy_crud(root: hvac.Client) -> None:
    name = unique_name("pol")
    text = 'path "secret/*" {\n  capabilities = ["read"]\n}\n'
    assert root.sys.create_or_update_acl_policy(name, text).status_code == 204
    read = root.sys.read_acl_policy(name)
    assert read["data"]["name"] == name and read["data"]["policy"] == text
    keys = root.sys.list_acl_policies()["data"]["keys"]
    assert {name, "default", "root"} <= set(keys)
    assert root.sys.delete_acl_policy(name).status_code == 204
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy(name)
    # DOC: deleting is idempotent.
    assert root.sys.delete_acl_policy(name).status_code == 204


def test_policy_names_are_lower_cased(root: hvac.Client) -> None:
    name = unique_name("pol")
    root.sys.create_or_update_acl_policy(name.upper(), 'path "a" { capabilities = ["read"] }')
    try:
        assert root.sys.read_acl_policy(name)["data"]["name"] == name
    finally:
        root.sys.delete_acl_policy(name)


def test_invalid_hcl_is_400(root: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
        root.sys.create_or_update_acl_policy(
            unique_name("bad"), 'path "a" { capabilities = ["banana"] }'
        )


def test_default_and_root_policies_are_protected(root: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot delete default policy"):
        root.sys.delete_acl_policy("default")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.create_or_update_acl_policy("root", 'path "a" { capabilities = ["read"] }')


def test_legacy_policy_endpoint(root: hvac.Client) -> None:
    name = unique_name("legacy")
    root.sys.create_or_update_policy(name, 'path "a/*" { capabilities = ["list"] }')
    try:
        assert name in root.sys.list_policies()["data"]["policies"]
        assert "a/*" in root.sys.read_policy(name)["data"]["rules"]
    finally:
        root.sys.delete_policy(name)


def test_default_policy_grants_lookup_self(root: hvac.Client, client_for: Callable) -> None:
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    client = client_for(token)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["default"]
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.list_mounted_secrets_engines()


def test_policy_changes_apply_to_existing_tokens(
    root: hvac.Client, mount: str, client_for: Callable
) -> None:
    """§1.8: policies are re-read per request; an edit applies to the next request."""
    name = unique_name("live")
    root.sys.create_or_update_acl_policy(
        name, f'path "{mount}/data/x" {{ capabilities = ["read"] }}'
    )
    try:
        root.secrets.kv.v2.create_or_update_secret("x", {"v": "1"}, mount_point=mount)
        client = client_for(
            root.auth.token.create(policies=[name], ttl="5m")["auth"]["client_token"]
        )
        assert client.secrets.kv.v2.read_secret_version(
            "x", mount_point=mount, raise_on_deleted_version=True
        )["data"]["data"] == {"v": "1"}
        root.sys.create_or_update_acl_policy(
            name, f'path "{mount}/data/x" {{ capabilities = ["deny"] }}'
        )
        with pytest.raises(hvac.exceptions.Forbidden):
            client.secrets.kv.v2.read_secret_version(
                "x", mount_point=mount, raise_on_deleted_version=True
            )
    finally:
        root.sys.delete_acl_policy(name)


# -- capabilities-self (DOC system/capabilities-self.mdx, §1.9) -------------------------
def test_capabilities_self(
    root: hvac.Client, make_policy: Callable[[str], str], client_for: Callable
) -> None:
    policy = make_policy('path "secret/data/*" { capabilities = ["update", "read", "sudo"] }')
    client = client_for(root.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"])
    caps = client.sys.get_capabilities(["secret/data/a", "other/x"])
    assert caps["secret/data/a"] == ["sudo", "read", "update"]  # Vault's order (§1.9)
    assert caps["other/x"] == ["deny"]
    single = client.sys.get_capabilities(["secret/data/a"])
    assert single["capabilities"] == ["sudo", "read", "update"]
    assert root.sys.get_capabilities(["anything"])["anything"] == ["root"]


# -- root-protected paths (DOC policies.mdx "Root protected API endpoints", §1.7) -------
def test_sys_audit_needs_sudo(
    root: hvac.Client, make_policy: Callable[[str], str], client_for: Callable
) -> None:
    without = make_policy('path "sys/audit" { capabilities = ["read"] }')
    with_sudo = make_policy('path "sys/audit" { capabilities = ["read", "sudo"] }')
    c1 = client_for(root.auth.token.create(policies=[without], ttl="5m")["auth"]["client_token"])
    c2 = client_for(root.auth.token.create(policies=[with_sudo], ttl="5m")["auth"]["client_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        c1.sys.list_enabled_audit_devices()
    assert isinstance(c2.sys.list_enabled_audit_devices()["data"], dict)


# -- audit devices (DOC system/audit.mdx, audit-hash.mdx, audit/file.mdx) -----------------
def test_audit_device_enable_list_hash_disable(root: hvac.Client) -> None:
    """`file_path=discard` works on any Vault; the hash is HMAC-SHA256 with the device's
    salt: stable per device, never the input itself."""
    path = unique_name("audit")
    root.sys.enable_audit_device("file", path=path, options={"file_path": "discard"})
    try:
        devices = root.sys.list_enabled_audit_devices()["data"]
        assert devices[f"{path}/"]["type"] == "file"
        assert devices[f"{path}/"]["options"]["file_path"] == "discard"
        first = root.write_data(f"sys/audit-hash/{path}", data={"input": "canary"})["data"]["hash"]
        again = root.write_data(f"sys/audit-hash/{path}", data={"input": "canary"})["data"]["hash"]
        assert first == again and first.startswith("hmac-sha256:") and "canary" not in first
    finally:
        root.sys.disable_audit_device(path)
    assert f"{path}/" not in root.sys.list_enabled_audit_devices()["data"]


# -- cubbyhole (DOC secrets/cubbyhole.mdx) --------------------------------------------------
def test_cubbyhole_is_private_to_each_token(root: hvac.Client, client_for: Callable) -> None:
    one = client_for(root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"])
    two = client_for(root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"])
    one.write_data("cubbyhole/note", data={"v": "mine"})
    assert one.read("cubbyhole/note")["data"] == {"v": "mine"}
    assert one.list("cubbyhole/")["data"]["keys"] == ["note"]
    assert two.read("cubbyhole/note") is None  # hvac: None on 404


# -- path canonicalisation (Go net/http ServeMux, which routes Vault's API) --------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("sys/../sys/health", "/v1/sys/health"),
        ("sys/./health", "/v1/sys/health"),
        ("sys//health", "/v1/sys/health"),
        ("sys/%2e%2e/sys/health", "/v1/sys/health"),
    ],
)
def test_non_canonical_paths_redirect_to_the_clean_path(
    http: RawHTTP, raw: str, clean: str
) -> None:
    # http.client sends the path as given (requests would remove dot segments itself).
    parsed = urlsplit(http.endpoint.addr)
    conn_type = (
        http_client.HTTPSConnection if parsed.scheme == "https" else http_client.HTTPConnection
    )
    conn = conn_type(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
    try:
        conn.request("GET", f"/v1/{raw}")
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == 301
    assert (resp.getheader("Location") or "").endswith(clean)
