"""`keybroker vault bootstrap --addr URL` (docs/contracts.md §5): exit codes and output.

Exit 0 when the layout is in place; 2 with a message on stderr for a missing or refused
token, an unreachable Vault or a conflicting layout. The token never reaches the output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import hvac
import pytest

from broker.bootstrap import apply_layout, create_caller_token, run_bootstrap
from broker.layout import INTAKE_POLICY, build_layout
from keybroker_dev.devvault.server import DevVaultServer
from tests.fixtures.vault import VaultEndpoint, real_vault_from_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the defaults of docs/contracts.md §7 apply, whatever the developer's shell holds.
    # KEYBROKER_TEST_* choose the test Vault (tests/fixtures/vault.py), not a setting:
    # kept, or this module would silently fall back to a devvault.
    for name in list(os.environ):
        if name.startswith("KEYBROKER_TEST_"):
            continue
        if name.startswith("KEYBROKER_") or name in ("VAULT_TOKEN", "VAULT_CACERT"):
            monkeypatch.delenv(name)


@pytest.fixture
def own_vault(request: pytest.FixtureRequest) -> DevVaultServer:
    """A fresh devvault, for runs of `keybroker vault bootstrap` that really write: the
    command writes the shipped names (policies, site role, AppRoles) with this test's
    settings, which other tests sharing a real Vault rely on, and counts the steps it
    changes, which only an empty Vault makes exact."""
    if real_vault_from_env() is not None:
        pytest.skip(
            "needs a Vault of its own: bootstrap would rewrite the shipped policy, role and "
            "AppRole names other tests on the shared Vault rely on"
        )
    return request.getfixturevalue("devvault")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_applies_the_layout_then_reports_nothing_to_do(own_vault: DevVaultServer) -> None:
    devvault = own_vault
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYBROKER_")}
    env["VAULT_TOKEN"] = devvault.root_token
    command = [sys.executable, "-m", "broker", "vault", "bootstrap", "--addr", devvault.addr]
    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "policy keybroker-broker: written" in first.stdout
    assert "token role keybroker-site: written" in first.stdout
    assert "Done: 16 of 16 steps changed." in first.stdout

    second = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "policy keybroker-broker: already in place" in second.stdout
    assert "nothing to do" in second.stdout
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert devvault.root_token not in output


def test_settings_shape_the_layout(
    own_vault: DevVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    devvault = own_vault
    monkeypatch.setenv("VAULT_TOKEN", devvault.root_token)
    monkeypatch.setenv("KEYBROKER_SITE_EGRESS_IPS", "192.0.2.0/24,198.51.100.7")
    monkeypatch.setenv("KEYBROKER_ROBOT_EGRESS_IPS", "203.0.113.10")
    monkeypatch.setenv("KEYBROKER_KV_MOUNT", "keys-test")
    assert run_bootstrap(devvault.addr) == 0
    client = hvac.Client(url=devvault.addr, token=devvault.root_token)
    role = client.read("auth/token/roles/keybroker-site")["data"]
    assert sorted(role["token_bound_cidrs"]) == ["192.0.2.0/24", "198.51.100.7/32"]
    robot = client.read("auth/approle/role/keybroker-robot")["data"]
    assert robot["secret_id_bound_cidrs"] == ["203.0.113.10/32"]
    assert "keys-test/" in client.sys.list_mounted_secrets_engines()["data"]
    assert (
        'path "keys-test/data/site/+/+"'
        in client.sys.read_acl_policy("keybroker-site-read")["data"]["policy"]
    )


def test_missing_token_exits_2(
    vault_endpoint: VaultEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_bootstrap(vault_endpoint.addr) == 2
    assert "VAULT_TOKEN is not set" in capsys.readouterr().err


def test_unreachable_vault_exits_2(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.CANARY-token-never-printed")
    addr = f"http://127.0.0.1:{_closed_port()}"
    assert run_bootstrap(addr) == 2
    out = capsys.readouterr()
    assert f"cannot reach Vault at {addr}" in out.err
    assert "CANARY" not in out.err + out.out


def test_permission_denied_exits_2_and_changes_nothing(
    vault_client: hvac.Client, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = vault_client
    apply_layout(root, build_layout())  # the default layout, as everyone sharing Vault has it
    weak = create_caller_token(root, [INTAKE_POLICY], ttl="5m")
    monkeypatch.setenv("VAULT_TOKEN", weak)
    assert run_bootstrap(root.url) == 2
    out = capsys.readouterr()
    assert "permission denied" in out.err
    assert weak not in out.err + out.out


def test_unknown_token_exits_2(vault_endpoint: VaultEndpoint, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-a-real-token")
    assert run_bootstrap(vault_endpoint.addr) == 2
    assert "keybroker vault bootstrap:" in capsys.readouterr().err


def test_conflict_exits_2(vault_endpoint: VaultEndpoint, monkeypatch, capsys) -> None:
    # Found before any write (broker/bootstrap.py preflight): safe on a shared Vault.
    monkeypatch.setenv("VAULT_TOKEN", vault_endpoint.root_token)
    monkeypatch.setenv("KEYBROKER_KV_MOUNT", "cubbyhole")
    assert run_bootstrap(vault_endpoint.addr) == 2
    assert "conflict, nothing changed" in capsys.readouterr().err


def test_invalid_configuration_exits_2(vault_endpoint: VaultEndpoint, monkeypatch, capsys) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault_endpoint.root_token)
    monkeypatch.setenv("KEYBROKER_SITE_EGRESS_IPS", "not-an-ip")
    assert run_bootstrap(vault_endpoint.addr) == 2
    assert "KEYBROKER_SITE_EGRESS_IPS" in capsys.readouterr().err
