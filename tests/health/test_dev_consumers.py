"""`keybroker dev` runs the reference consumers: a robot key's first verification reaches
the broker within 30 s of its acceptance; `keybroker keys status --dev` shows it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from typer.testing import CliRunner

from broker.cli import app
from keybroker_dev.devmode import DevStack


def test_dev_mode_robot_verifies_a_new_key_within_30s(tmp_path: Path) -> None:
    lines: list[str] = []
    state_file = tmp_path / "dev.json"
    stack = DevStack(state_file, "devvault", lines.append)
    state = stack.start()
    try:
        headers = {"Authorization": f"Bearer {state.intake_token}"}
        key = state.sandbox_keys["okx"]["trade_whitelisted"]
        url = f"{state.broker_url}/v1/accounts/bob/keys/okx/robot"
        put = requests.put(url, json={"name": "bot", **key}, headers=headers, timeout=30)
        assert put.status_code == 201, put.text
        accepted = time.monotonic()
        verified = None
        while time.monotonic() - accepted < 30 and not verified:
            time.sleep(0.2)
            verified = requests.get(url, headers=headers, timeout=10).json()["health"][
                "verified_at"
            ]
        assert verified, "no verification reached the broker within 30 s"
        assert any("robot: using bob/okx v1" in line for line in lines)
        # The site worker verifies site keys the same way, with its site tokens.
        site_key = state.sandbox_keys["binance"]["read_only"]
        site_url = f"{state.broker_url}/v1/accounts/bob/keys/binance/site"
        put = requests.put(site_url, json={"name": "site", **site_key}, headers=headers, timeout=30)
        assert put.status_code == 201, put.text
        deadline = time.monotonic() + 30
        health = put.json()["health"]
        while time.monotonic() < deadline and not health["verified_at"]:
            time.sleep(0.2)
            health = requests.get(site_url, headers=headers, timeout=10).json()["health"]
        assert health["verified_at"] and health["status"] == "connected", health

        runner = CliRunner()
        table = runner.invoke(app, ["keys", "status", "--dev", "--state-file", str(state_file)])
        assert table.exit_code == 0, table.output
        assert table.output.splitlines()[0].split() == ["status", "binance", "okx", "total"]
        assert "connected" in table.output and "STOP" not in table.output
        as_json = runner.invoke(
            app,
            [
                "keys",
                "status",
                "--dev",
                "--state-file",
                str(state_file),
                "--format",
                "json",
                "--status",
                "connected",
                "--role",
                "robot",
            ],
        )
        listing = json.loads(as_json.output)
        assert [(k["account"], k["exchange"]) for k in listing["keys"]] == [("bob", "okx")]
        watched = runner.invoke(
            app,
            [
                "keys",
                "status",
                "--dev",
                "--state-file",
                str(state_file),
                "--watch",
                "0.05",
                "--repeat",
                "2",
            ],
        )
        assert watched.exit_code == 0 and watched.output.count("connected") == 2
        assert key["secret"] not in table.output + as_json.output + "\n".join(lines)
    finally:
        stack.stop()


def test_keys_status_errors_are_clear(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["keys", "status", "--dev", "--state-file", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "keybroker dev" in missing.output
    no_token = runner.invoke(app, ["keys", "status"], env={"KEYBROKER_TOKEN": ""})
    assert no_token.exit_code == 2
    down = runner.invoke(
        app, ["keys", "status", "--broker-url", "http://127.0.0.1:9", "--token", "t"]
    )
    assert down.exit_code == 3 and "cannot reach the broker" in down.output
