"""Mount and auth-method tuning, pinned to Vault's documents; runs on devvault and, with
KEYBROKER_TEST_VAULT_ADDR/TOKEN set, on a real Vault (the `vault_endpoint` fixture).

DOC api-docs/system/mounts.mdx "Read mount configuration" / "Tune mount configuration"
and api-docs/system/auth.mdx "Read auth method tuning" / "Tune auth method":
`default_lease_ttl` and `max_lease_ttl` are read back in seconds, the server's 768h when
the mount sets none; "system" clears a tuned value. CODE vault/logical_system.go
`handleTuneWriteCommon`/`tuneMountTTLs` (a max below the default is refused) and
sdk/framework/lease.go `CalculateTTL` (a token's TTL is capped by the max lease TTL of the
mount that issued it). Summarised in docs/facts/vault.md §4.5.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devvault.conftest import RawHTTP
from tests.fixtures.vault import unique_name

SERVER_DEFAULT = 768 * 3600  # DOC configuration/index.mdx: default and max lease TTL


@pytest.fixture
def kv_mount(http: RawHTTP) -> Iterator[str]:
    path = unique_name("kv")
    resp = http("POST", f"sys/mounts/{path}", json={"type": "kv", "options": {"version": "2"}})
    assert resp.status_code == 204, resp.text
    yield path
    http("DELETE", f"sys/mounts/{path}")


@pytest.fixture
def approle_mount(http: RawHTTP) -> Iterator[str]:
    path = unique_name("approle")
    assert http("POST", f"sys/auth/{path}", json={"type": "approle"}).status_code == 204
    yield path
    http("DELETE", f"sys/auth/{path}")


def _ttls(body: dict) -> tuple[int, int]:
    return body["data"]["default_lease_ttl"], body["data"]["max_lease_ttl"]


def test_secrets_mount_tune_is_stored_and_read_back(http: RawHTTP, kv_mount: str) -> None:
    tune = f"sys/mounts/{kv_mount}/tune"
    assert _ttls(http("GET", tune).json()) == (SERVER_DEFAULT, SERVER_DEFAULT)
    resp = http("POST", tune, json={"default_lease_ttl": "1h", "max_lease_ttl": "2h"})
    assert resp.status_code == 204, resp.text
    assert _ttls(http("GET", tune).json()) == (3600, 7200)
    # Integer seconds work too, and a value left out keeps what was tuned.
    assert http("POST", tune, json={"max_lease_ttl": 5400}).status_code == 204
    assert _ttls(http("GET", tune).json()) == (3600, 5400)
    listed = http("GET", "sys/mounts").json()["data"][f"{kv_mount}/"]["config"]
    assert (listed["default_lease_ttl"], listed["max_lease_ttl"]) == (3600, 5400)
    # "system" gives the value back to the server.
    resp = http("POST", tune, json={"default_lease_ttl": "system", "max_lease_ttl": "system"})
    assert resp.status_code == 204
    assert _ttls(http("GET", tune).json()) == (SERVER_DEFAULT, SERVER_DEFAULT)


def test_a_max_below_the_default_is_refused_and_nothing_changes(
    http: RawHTTP, kv_mount: str
) -> None:
    tune = f"sys/mounts/{kv_mount}/tune"
    assert http("POST", tune, json={"default_lease_ttl": "1h"}).status_code == 204
    resp = http("POST", tune, json={"max_lease_ttl": "30m"})
    assert resp.status_code == 400
    assert "less than backend default lease TTL" in resp.json()["errors"][0]
    assert _ttls(http("GET", tune).json()) == (3600, SERVER_DEFAULT)
    assert http("POST", tune, json={"max_lease_ttl": "forever"}).status_code == 400


def test_auth_method_tune_reads_and_writes(http: RawHTTP, approle_mount: str) -> None:
    tune = f"sys/auth/{approle_mount}/tune"
    first = http("GET", tune)
    assert first.status_code == 200, first.text
    assert _ttls(first.json()) == (SERVER_DEFAULT, SERVER_DEFAULT)
    resp = http("POST", tune, json={"default_lease_ttl": "5m", "max_lease_ttl": "10m"})
    assert resp.status_code == 204, resp.text
    assert _ttls(http("GET", tune).json()) == (300, 600)
    listed = http("GET", "sys/auth").json()["data"][f"{approle_mount}/"]["config"]
    assert (listed["default_lease_ttl"], listed["max_lease_ttl"]) == (300, 600)


def test_approle_login_ttl_is_capped_by_the_mount_max(http: RawHTTP, approle_mount: str) -> None:
    role = f"auth/{approle_mount}/role/r"
    assert http("POST", role, json={"token_ttl": "1h", "token_policies": ["default"]}).ok
    role_id = http("GET", f"{role}/role-id").json()["data"]["role_id"]
    secret_id = http("POST", f"{role}/secret-id").json()["data"]["secret_id"]

    def login() -> int:
        body = {"role_id": role_id, "secret_id": secret_id}
        resp = http("POST", f"auth/{approle_mount}/login", token="", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["auth"]["lease_duration"]

    assert login() == 3600
    tune = f"sys/auth/{approle_mount}/tune"
    assert http("POST", tune, json={"max_lease_ttl": "10m"}).status_code == 204
    assert login() == 600
    # Without a role TTL, the mount's default applies.
    assert http("POST", role, json={"token_ttl": 0}).ok
    assert http("POST", tune, json={"default_lease_ttl": "2m"}).status_code == 204
    assert login() == 120


def test_token_store_ttl_is_capped_by_auth_token_max(http: RawHTTP) -> None:
    tune = "sys/auth/token/tune"
    assert http("POST", tune, json={"max_lease_ttl": "5m"}).status_code == 204
    try:
        assert _ttls(http("GET", tune).json())[1] == 300
        body = {"ttl": "1h", "policies": ["default"]}
        resp = http("POST", "auth/token/create", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["auth"]["lease_duration"] == 300
        assert any("capped" in w for w in resp.json()["warnings"])
    finally:
        assert http("POST", tune, json={"max_lease_ttl": "system"}).status_code == 204
    assert _ttls(http("GET", tune).json())[1] == SERVER_DEFAULT


def test_tuning_a_missing_mount_is_a_400(http: RawHTTP) -> None:
    missing = unique_name("none")
    assert http("GET", f"sys/mounts/{missing}/tune").status_code == 400
    assert http("POST", f"sys/auth/{missing}/tune", json={"max_lease_ttl": "1h"}).status_code == 400
