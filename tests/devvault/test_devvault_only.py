"""devvault-only behaviour: the movable clock, fault injection, the audit file on local
disk, start-up states and the `keybroker devvault` command. These use the `devvault`
fixture (a fresh server per test), skipped against a real Vault.

Vault semantics still cited: token/secret-id/wrapping expiry (DOC concepts/tokens.mdx,
api-docs/auth/approle.mdx, concepts/response-wrapping.mdx), sealed -> 503 and health
codes (DOC system/health.mdx, docs/facts/vault.md §4.2, §4.5), audit HMAC (DOC
audit/index.mdx, api-docs/system/audit-hash.mdx), init (DOC system/init.mdx).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hvac
import pytest
import requests

from keybroker_dev.devvault.faults import RemoteFaults
from keybroker_dev.devvault.server import DevVaultServer

CANARY_SECRET = "canary-secret-7f3a9d"


def _root(srv: DevVaultServer) -> hvac.Client:
    return hvac.Client(url=srv.addr, token=srv.root_token)


# -- clock ------------------------------------------------------------------------------
def test_expired_token_is_403(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    client = hvac.Client(url=devvault.addr, token=token)
    devvault.clock.advance(299)
    assert client.auth.token.lookup_self()["data"]["ttl"] <= 1
    devvault.clock.advance(2)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()


def test_expired_site_batch_token_is_403(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.sys.enable_secrets_engine("kv", path="exchange-keys", options={"version": "2"})
    from broker.layout import SITE_READ_POLICY, build_layout, policy_text

    root.sys.create_or_update_acl_policy(SITE_READ_POLICY, policy_text(SITE_READ_POLICY))
    role = build_layout(site_token_cidrs=("127.0.0.1/32",)).site_token_role
    root.write_data(f"auth/token/roles/{role.name}", data=role.vault_payload())
    root.secrets.kv.v2.create_or_update_secret(
        "site/a/binance", {"api_key": "k"}, mount_point="exchange-keys"
    )
    token = root.auth.token.create(role_name=role.name, ttl="5m")["auth"]["client_token"]
    site = hvac.Client(url=devvault.addr, token=token)
    site.secrets.kv.v2.read_secret_version(
        "site/a/binance", mount_point="exchange-keys", raise_on_deleted_version=True
    )
    devvault.clock.advance(301)
    with pytest.raises(hvac.exceptions.Forbidden):
        site.secrets.kv.v2.read_secret_version(
            "site/a/binance", mount_point="exchange-keys", raise_on_deleted_version=True
        )


def test_secret_id_and_wrapping_token_expire(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.sys.enable_auth_method("approle")
    root.write_data(
        "auth/approle/role/r", data={"token_policies": ["default"], "secret_id_ttl": "10m"}
    )
    role_id = root.auth.approle.read_role_id("r")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("r")["data"]["secret_id"]
    wrapped = root.auth.approle.generate_secret_id("r", wrap_ttl="1m")["wrap_info"]["token"]
    devvault.clock.advance(61)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="wrapping token is not valid"):
        root.sys.unwrap(wrapped)
    devvault.clock.advance(600)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=devvault.addr).auth.approle.login(role_id, secret_id)


# -- faults ------------------------------------------------------------------------------
def test_seal_gives_503_and_health_reports_it(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    devvault.faults.seal()
    with pytest.raises(hvac.exceptions.VaultDown):
        root.auth.token.lookup_self()
    health = requests.get(devvault.addr + "/v1/sys/health", timeout=5)
    assert health.status_code == 503 and health.json()["sealed"] is True
    assert (
        requests.get(devvault.addr + "/v1/sys/health?sealedcode=200", timeout=5).status_code == 200
    )
    devvault.faults.unseal()
    assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_seal_and_unseal_through_the_api(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.sys.seal()
    assert root.sys.read_seal_status()["sealed"] is True
    devvault.faults.unseal()
    assert root.sys.read_seal_status()["sealed"] is False


def test_fail_next_with_path_prefix(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    devvault.faults.fail_next(2, status=500, path_prefix="kv/")
    assert root.auth.token.lookup_self()  # other paths unaffected
    for _ in range(2):
        with pytest.raises(hvac.exceptions.InternalServerError, match="injected fault"):
            root.secrets.kv.v2.create_or_update_secret("a", {"b": "c"}, mount_point="kv")
    root.secrets.kv.v2.create_or_update_secret("a", {"b": "c"}, mount_point="kv")
    devvault.faults.fail_next(1)  # default 503
    with pytest.raises(hvac.exceptions.VaultDown):
        root.auth.token.lookup_self()


def test_drop_next_closes_the_connection(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    devvault.faults.drop_next(1)
    with pytest.raises(requests.exceptions.ConnectionError):
        root.auth.token.lookup_self()
    assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_latency_and_reset(devvault: DevVaultServer) -> None:
    devvault.faults.latency(0.2)
    resp = requests.get(devvault.addr + "/v1/sys/health", timeout=5)
    assert resp.elapsed.total_seconds() >= 0.2
    devvault.faults.fail_next(5)
    devvault.faults.seal()
    devvault.faults.reset()
    assert devvault.faults.state() == {"sealed": False, "latency": 0.0, "fail": [], "drop": []}
    assert requests.get(devvault.addr + "/v1/sys/health", timeout=5).status_code == 200


def test_http_controls_need_the_root_token(devvault: DevVaultServer) -> None:
    denied = requests.post(
        devvault.addr + "/_devvault/faults/seal", timeout=5, headers={"X-Vault-Token": "hvs.nope"}
    )
    assert denied.status_code == 403
    remote = RemoteFaults(devvault.addr, devvault.root_token)
    remote.fail_next(1, status=503, path_prefix="sys/mounts")
    assert remote.state()["fail"][0]["remaining"] == 1
    with pytest.raises(hvac.exceptions.VaultDown):
        _root(devvault).sys.list_mounted_secrets_engines()
    remote.seal()
    assert devvault.core.seal.sealed is True
    remote.reset()
    token = _root(devvault).auth.token.create(policies=["default"], ttl="1m")["auth"]
    remote.advance_clock(61)
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=devvault.addr, token=token["client_token"]).auth.token.lookup_self()


# -- audit -----------------------------------------------------------------------------
def test_audit_file_hmacs_secrets_and_tokens(devvault: DevVaultServer, tmp_path: Path) -> None:
    root = _root(devvault)
    log = tmp_path / "audit.log"
    root.sys.enable_audit_device("file", path="file", options={"file_path": str(log)})
    assert root.sys.list_enabled_audit_devices()["data"]["file/"]["type"] == "file"
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    root.secrets.kv.v2.create_or_update_secret("k", {"secret": CANARY_SECRET}, mount_point="kv")
    root.secrets.kv.v2.read_secret_version("k", mount_point="kv", raise_on_deleted_version=True)
    text = log.read_text()
    assert CANARY_SECRET not in text
    assert devvault.root_token not in text
    expected = root.write_data("sys/audit-hash/file", data={"input": CANARY_SECRET})["hash"]
    assert expected.startswith("hmac-sha256:") and expected in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert {e["type"] for e in entries} == {"request", "response"}
    write = next(
        e
        for e in entries
        if e["request"]["path"] == "kv/data/k" and e["request"]["operation"] == "create"
    )
    assert write["request"]["remote_address"] == "127.0.0.1"
    assert write["auth"]["client_token"].startswith("hmac-sha256:")
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_audit_refuses_executable_mode(devvault: DevVaultServer, tmp_path: Path) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="executable"):
        _root(devvault).sys.enable_audit_device(
            "file", path="file", options={"file_path": str(tmp_path / "a.log"), "mode": "0755"}
        )


def test_audit_dir_confines_file_paths(tmp_path: Path) -> None:
    with DevVaultServer(audit_dir=tmp_path) as srv:
        _root(srv).sys.enable_audit_device(
            "file", path="file", options={"file_path": "/vault/logs/audit.log"}
        )
        _root(srv).auth.token.lookup_self()
    assert (tmp_path / "vault/logs/audit.log").read_text().count("\n") >= 2


# -- start-up states (DOC system/init.mdx, unseal.mdx) --------------------------------
def test_uninitialized_server_init_and_unseal() -> None:
    with DevVaultServer(initialized=False) as srv:
        client = hvac.Client(url=srv.addr)
        assert requests.get(srv.addr + "/v1/sys/health", timeout=5).status_code == 501
        assert client.sys.is_initialized() is False
        result = client.sys.initialize(secret_shares=3, secret_threshold=2)
        assert len(result["keys"]) == 3 and result["root_token"].startswith("hvs.")
        assert client.sys.is_sealed() is True
        client.sys.submit_unseal_key(result["keys"][0])
        assert client.sys.read_seal_status()["progress"] == 1
        client.sys.submit_unseal_key(result["keys"][2])
        assert client.sys.is_sealed() is False
        client.token = result["root_token"]
        assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_auto_unseal_init_returns_recovery_keys() -> None:
    with DevVaultServer(initialized=False, auto_unseal=True) as srv:
        client = hvac.Client(url=srv.addr)
        result = client.sys.initialize(recovery_shares=5, recovery_threshold=3)
        assert len(result["recovery_keys"]) == 5 and result["keys"] == []
        assert client.sys.is_sealed() is False
        assert client.sys.read_seal_status()["recovery_seal"] is True


def test_fresh_server_layout(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    assert set(root.sys.list_mounted_secrets_engines()["data"]) == {"sys/", "cubbyhole/"}
    assert set(root.sys.list_auth_methods()["data"]) == {"token/"}
    assert root.sys.list_acl_policies()["data"]["keys"] == ["default", "root"]
    assert devvault.root_token not in repr(devvault)


def test_cli_devvault_prints_addr_and_token_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "devvault", "--port", "0", "--root-token", "hvs.cli-test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["root_token"] == "hvs.cli-test"
        client = hvac.Client(url=first["addr"], token="hvs.cli-test")
        assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_credentials_stay_out_of_reprs(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    entry = devvault.core.tokens.lookup(token)
    assert entry is not None and token not in repr(entry)
    root.sys.enable_auth_method("approle")
    root.write_data("auth/approle/role/r", data={"token_policies": ["default"]})
    secret_id = root.auth.approle.generate_secret_id("r")["data"]["secret_id"]
    store = devvault.core.mounts["auth/approle/"].backend.store  # type: ignore[attr-defined]
    assert secret_id not in repr(store.secret_ids[secret_id])
    wrapped = root.auth.token.create(policies=["default"], ttl="5m", wrap_ttl="1m")
    wrap_token = wrapped["wrap_info"]["token"]
    held = devvault.core.wrapping.get(wrap_token)
    assert held is not None and wrap_token not in repr(held)


def test_child_token_dies_when_its_parent_expires(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.sys.create_or_update_acl_policy(
        "creator", 'path "auth/token/create" { capabilities = ["update"] }'
    )
    parent = root.auth.token.create(policies=["creator"], ttl="10m")["auth"]["client_token"]
    child = hvac.Client(url=devvault.addr, token=parent).auth.token.create(ttl="1h")["auth"]
    devvault.clock.advance(601)
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=devvault.addr, token=child["client_token"]).auth.token.lookup_self()


def test_lenient_mode_accepts_a_batch_role_with_explicit_max_ttl() -> None:
    """`strict_batch_roles=False`: the role is accepted and, as in Vault, its explicit max
    TTL does not bound batch tokens."""
    with DevVaultServer(strict_batch_roles=False) as srv:
        _lenient_role_check(srv)


def _lenient_role_check(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    root.write_data(
        "auth/token/roles/site",
        data={
            "allowed_policies": ["default"],
            "token_type": "batch",
            "orphan": True,
            "renewable": False,
            "token_explicit_max_ttl": "15m",
        },
    )
    assert root.auth.token.create(role_name="site", ttl="1h")["auth"]["lease_duration"] == 3600


def test_stopped_server_answers_nothing_even_on_kept_alive_connections() -> None:
    srv = DevVaultServer().start()
    client = _root(srv)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]
    srv.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        client.auth.token.lookup_self()


def test_request_objects_do_not_show_tokens_or_bodies() -> None:
    from keybroker_dev.devvault.protocol import Request

    request = Request(
        "POST",
        "kv/data/x",
        {},
        {"x-vault-token": "hvs.canary-token"},
        b'{"data": {"secret": "canary-secret"}}',
        "127.0.0.1",
    )
    assert "canary" not in repr(request)


def test_cubbyhole_dies_with_its_token(devvault: DevVaultServer) -> None:
    root = _root(devvault)
    token = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    hvac.Client(url=devvault.addr, token=token).write_data("cubbyhole/x", data={"v": "1"})
    assert token in devvault.core.cubbyholes
    root.auth.token.revoke(token)
    assert token not in devvault.core.cubbyholes
