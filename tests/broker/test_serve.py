"""`keybroker serve`: configuration errors exit 2 with a clear message; a good
configuration serves on loopback and says where."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import hvac
import pytest
from pydantic import BaseModel

from broker.api.server import open_listen_refused, serve
from broker.loopback import is_loopback
from keybroker_dev.ports import free_port


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KEYBROKER_"):
            monkeypatch.delenv(name)


def test_invalid_configuration_exits_2(monkeypatch, capsys) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("KEYBROKER_SITE_TOKEN_TTL", "soon")
    assert serve() == 2
    assert "KEYBROKER_SITE_TOKEN_TTL" in capsys.readouterr().err


def test_missing_vault_credentials_exit_2(monkeypatch, capsys) -> None:
    _clean_env(monkeypatch)
    assert serve() == 2
    assert "KEYBROKER_VAULT_TOKEN" in capsys.readouterr().err


def test_malformed_listen_address_exits_2(monkeypatch, capsys) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("KEYBROKER_VAULT_TOKEN", "t")
    monkeypatch.setenv("KEYBROKER_LISTEN", "localhost")
    assert serve() == 2
    assert "KEYBROKER_LISTEN" in capsys.readouterr().err


def test_unreadable_vault_ca_exits_2(monkeypatch, capsys, tmp_path) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("KEYBROKER_VAULT_TOKEN", "t")
    monkeypatch.setenv("KEYBROKER_VAULT_CACERT", str(tmp_path / "missing.pem"))
    assert serve() == 2
    assert "keybroker serve:" in capsys.readouterr().err


def test_an_open_listen_address_needs_an_explicit_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The guard `keybroker serve` and `keybroker site` share: beyond loopback only when
    the listen address was set explicitly, never by a default."""

    class Listening(BaseModel):
        listen: str = "0.0.0.0:8080"

    assert open_listen_refused("keybroker serve", "0.0.0.0", Listening(), "KEYBROKER_LISTEN")
    assert "keybroker serve: refusing to listen on 0.0.0.0 without KEYBROKER_LISTEN" in (
        capsys.readouterr().err
    )
    explicit = Listening(listen="0.0.0.0:8080")
    assert not open_listen_refused("keybroker serve", "0.0.0.0", explicit, "KEYBROKER_LISTEN")
    assert not open_listen_refused("keybroker site", "::1", Listening(), "KEYBROKER_SITE_LISTEN")
    assert capsys.readouterr().err == ""


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "example.com"))


def test_serve_runs_the_broker_from_the_environment(vault_client: hvac.Client) -> None:
    """Runs on the session endpoint (a real Vault too); the broker gets a child token of
    its own, a random value the output scan below can look for, revoked afterwards."""
    token = vault_client.auth.token.create(policies=["root"], ttl="10m")["auth"]["client_token"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYBROKER_")}
    env |= {
        "KEYBROKER_VAULT_ADDR": vault_client.url,
        "KEYBROKER_VAULT_TOKEN": token,
        "KEYBROKER_LISTEN": f"127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("keybroker serve did not become ready")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/accounts/a/keys").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        vault_client.auth.token.revoke(token)
    assert f"listening on http://127.0.0.1:{port}" in err
    assert token not in out + err
    assert proc.returncode == 0
