"""`keybroker dev` (docs/contracts.md §6): everything on loopback, the state file, Ctrl-C.

The end-to-end test runs `python -m broker dev` as a child, as `make dev` does, submits a
real sandbox key through the broker, reads it back with a site token, then sends
SIGINT and checks that every port is closed and the state file is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import pytest
import requests

from keybroker_dev import devmode
from keybroker_dev.devmode import DevModeError, DevStack, DevState, next_steps, write_state_file

REPO = Path(__file__).resolve().parents[2]
STATE_KEYS = {
    "broker_url",
    "vault_addr",
    "root_token",
    "intake_token",
    "site_backend_token",
    "sandbox_url",
    "sandbox_keys",
}
REQUIRED_LABELS = {"read_only", "trade_whitelisted", "withdraw_enabled", "no_whitelist"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"dev mode exited with {proc.returncode}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("dev mode did not write its state file in time")
        time.sleep(0.1)


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


def _check_state(state: dict) -> None:
    assert set(state) >= STATE_KEYS
    for url in ("broker_url", "vault_addr", "sandbox_url"):
        assert urlsplit(state[url]).hostname == "127.0.0.1", url
    assert state["sandbox_keys"], "no sandboxed exchanges"
    for exchange, labels in state["sandbox_keys"].items():
        assert set(labels) >= REQUIRED_LABELS, exchange
        for creds in labels.values():
            assert {"api_key", "secret"} <= set(creds) <= {"api_key", "secret", "passphrase"}


@pytest.mark.slow
def test_dev_mode_end_to_end_then_ctrl_c(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "dev.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYBROKER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "dev", "--state-file", str(state_file)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(state_file, proc)
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(state_file.parent.stat().st_mode) == 0o700
        state = json.loads(state_file.read_text())
        _check_state(state)

        key = state["sandbox_keys"]["binance"]["read_only"]
        put = requests.put(
            f"{state['broker_url']}/v1/accounts/alice/keys/binance/site",
            json={"name": "alice main", **key},
            headers={"Authorization": f"Bearer {state['intake_token']}"},
            timeout=30,
        )
        assert put.status_code == 201, put.text
        assert put.json()["api_key_masked"] != key["api_key"]

        minted = requests.post(
            f"{state['broker_url']}/v1/site-tokens",
            json={},
            headers={"Authorization": f"Bearer {state['site_backend_token']}"},
            timeout=30,
        )
        assert minted.status_code == 201, minted.text
        site = hvac.Client(url=state["vault_addr"], token=minted.json()["token"])
        stored = site.secrets.kv.v2.read_secret_version(
            "site/alice/binance", mount_point="exchange-keys", raise_on_deleted_version=True
        )["data"]["data"]
        # Dev mode runs the default `transit` custody: KV holds no secret, the site token
        # signs through Vault with site keys only (docs/custody.md).
        assert stored["api_key"] == key["api_key"] and "secret" not in stored
        assert stored["custody"] == "transit"
        assert key["secret"] not in json.dumps(stored)
        signed = site.write_data("exchange-signing/hmac/site-alice-binance", data={"input": "eA=="})
        assert signed["data"]["hmac"].startswith("vault:v1:")
        with pytest.raises(hvac.exceptions.Forbidden):
            site.write_data("exchange-signing/hmac/robot-alice-binance", data={"input": "eA=="})
        with pytest.raises(hvac.exceptions.Forbidden):
            site.secrets.kv.v2.read_secret_version(
                "robot/alice/binance", mount_point="exchange-keys", raise_on_deleted_version=True
            )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail("dev mode did not stop within 30 s of SIGINT")

    assert proc.returncode == 0, err
    assert "Ready in" in out and "Stopped." in out
    assert str(state_file) in out
    for secret in (state["root_token"], state["intake_token"], key["secret"], key["api_key"]):
        assert secret not in out + err
    for url in ("broker_url", "vault_addr", "sandbox_url"):
        assert not _port_open(state[url]), f"{url} still listening"
    assert not state_file.exists()


def test_sigterm_stops_an_in_process_run(tmp_path: Path, capsys) -> None:
    state_file = tmp_path / "dev.json"
    seen: dict = {}

    def terminate_when_ready() -> None:
        deadline = time.monotonic() + 90
        while not state_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.update(json.loads(state_file.read_text()))
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_when_ready, daemon=True)
    watcher.start()
    before = signal.getsignal(signal.SIGTERM)
    assert devmode.run(state_file, "devvault") == 0
    watcher.join(5)
    _check_state(seen)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert not state_file.exists()
    for url in ("broker_url", "vault_addr", "sandbox_url"):
        assert not _port_open(seen[url])
    out = capsys.readouterr().out
    assert seen["root_token"] not in out and seen["site_backend_token"] not in out


def test_binary_mode_without_a_vault_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `vault`
    assert devmode.run(tmp_path / "dev.json", "binary") == 2
    err = capsys.readouterr().err
    assert "needs a `vault` binary on PATH" in err and "--vault devvault" in err
    assert not (tmp_path / "dev.json").exists()


def test_unknown_vault_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DevModeError, match="unknown vault mode"):
        DevStack(tmp_path / "dev.json", "consul", print)


def test_a_bad_verify_interval_is_a_clear_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from broker.cli import app

    state = str(tmp_path / "dev.json")
    for bad, says in (("soon", "a duration such as 10s"), ("0", "must be positive")):
        result = CliRunner().invoke(app, ["dev", "--state-file", state, "--verify-interval", bad])
        assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "dev.json").exists()
    with pytest.raises(DevModeError, match="must be positive"):
        DevStack(tmp_path / "dev.json", "devvault", print, verify_interval=0)


def _state() -> DevState:
    return DevState(
        broker_url="http://127.0.0.1:1",
        vault_addr="http://127.0.0.1:2",
        root_token="hvs.CANARY-root",
        intake_token="hvs.CANARY-intake",
        site_backend_token="hvs.CANARY-site",
        sandbox_url="http://127.0.0.1:3",
        sandbox_keys={"binance": {"read_only": {"api_key": "k", "secret": "CANARY-s"}}},
        robot_role_id="role",
        robot_secret_id="CANARY-secret-id",
    )


def test_state_file_is_private_from_the_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen the file's mode
    try:
        path = tmp_path / "new" / "dir" / "dev.json"
        write_state_file(path, _state())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["intake_token"] == "hvs.CANARY-intake"
    write_state_file(path, _state())  # rewriting replaces it atomically
    assert [p.name for p in path.parent.iterdir()] == ["dev.json"]


def test_existing_directories_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    write_state_file(shared / "dev.json", _state())
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "dev.json").stat().st_mode) == 0o600


def test_next_steps_read_secrets_from_the_state_file_only(tmp_path: Path) -> None:
    text = next_steps(tmp_path / "dev.json")
    assert str(tmp_path / "dev.json") in text
    assert "jq -r .intake_token $S" in text and "/v1/site-tokens" in text
    assert "hvs." not in text


def test_ctrl_c_during_start_up_stops_what_already_runs(tmp_path: Path, monkeypatch) -> None:
    started: dict[str, str] = {}
    real_vault, real_sandbox = DevStack._start_vault, DevStack._start_sandbox

    def vault(self):
        started["vault"], token = real_vault(self)
        return started["vault"], token

    def sandbox_then_ctrl_c(self):
        server = real_sandbox(self)
        started["sandbox"] = server.base_url
        os.kill(os.getpid(), signal.SIGINT)
        return server

    monkeypatch.setattr(DevStack, "_start_vault", vault)
    monkeypatch.setattr(DevStack, "_start_sandbox", sandbox_then_ctrl_c)
    assert devmode.run(tmp_path / "dev.json", "devvault") == 130
    assert set(started) == {"vault", "sandbox"}
    assert not any(_port_open(url) for url in started.values())
    assert not (tmp_path / "dev.json").exists()


FAKE_VAULT = """#!{python}
# Stands in for `vault server -dev` as documented (developer.hashicorp.com, "Starting the
# server", Dev Options): -dev-root-token-id / VAULT_DEV_ROOT_TOKEN_ID and
# -dev-listen-address / VAULT_DEV_LISTEN_ADDRESS; serves devvault until SIGTERM.
import os, sys
assert sys.argv[1:] == ["server", "-dev", "-dev-no-store-token"], sys.argv
host, port = os.environ["VAULT_DEV_LISTEN_ADDRESS"].rsplit(":", 1)
from keybroker_dev.devvault.server import run_forever
sys.exit(run_forever(host, int(port), os.environ["VAULT_DEV_ROOT_TOKEN_ID"]))
"""


def test_binary_mode_runs_vault_server_dev_as_a_child(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vault"
    fake.write_text(FAKE_VAULT.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    state_file = tmp_path / "kb" / "dev.json"
    seen: dict = {}

    def terminate_when_ready() -> None:
        deadline = time.monotonic() + 90
        while not state_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.update(json.loads(state_file.read_text()))
        health = requests.get(f"{seen['vault_addr']}/v1/sys/health", timeout=5)
        seen["health"] = health.status_code
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_when_ready, daemon=True)
    watcher.start()
    assert devmode.run(state_file, "binary") == 0
    watcher.join(5)
    assert seen["health"] == 200
    _check_state(seen)
    assert not _port_open(seen["vault_addr"])  # the child was stopped
    # `vault server -dev` prints its root token: its log is as private as the state file.
    assert stat.S_IMODE((tmp_path / "kb" / "vault.log").stat().st_mode) == 0o600


def test_dev_state_repr_holds_no_secret() -> None:
    from keybroker_dev.devmode import DevState

    canary = "CANARY-devstate-0123456789"
    state = DevState(
        broker_url="http://127.0.0.1:1",
        vault_addr="http://127.0.0.1:2",
        root_token=f"hvs.{canary}-root",
        intake_token=f"hvs.{canary}-intake",
        site_backend_token=f"hvs.{canary}-backend",
        sandbox_url="http://127.0.0.1:3",
        sandbox_keys={"binance": {"read_only": {"api_key": "k", "secret": f"{canary}-s"}}},
        robot_role_id="role-id",
        robot_secret_id=f"{canary}-secret-id",
    )
    assert canary not in repr(state)
    assert canary in str(state.to_json())  # the state file itself keeps them (0600)
