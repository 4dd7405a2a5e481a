"""How the key page is served: by `keybroker dev` at `ui_url`, by `keybroker site`, and
from the package's own files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from broker.site.server import serve_site
from keybroker_dev.devmode import DevStack, DevState, next_steps
from keybroker_dev.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "broker" / "site"


def test_dev_mode_serves_the_page_at_ui_url(
    dev_stack: DevStack, dev_output: list[str], tmp_path: Path
) -> None:
    dev = dev_stack.state
    assert dev is not None
    assert f"  key page: {dev.ui_url}" in dev_output  # the line the README points at
    assert urlsplit(dev.ui_url).hostname == "127.0.0.1"
    assert json.loads(dev_stack.state_file.read_text())["ui_url"] == dev.ui_url
    page = requests.get(f"{dev.ui_url}/accounts/alice", timeout=10)
    assert page.status_code == 200 and "Exchange keys of alice" in page.text
    # Both roles' cards show the exchange-side egress the dev broker checks whitelists for.
    assert page.text.count("203.0.113.10") >= 2
    for token in (dev.intake_token, dev.site_backend_token, dev.root_token):
        assert token not in page.text  # the tokens stay server-side
    assert "ui_url" in next_steps(tmp_path / "dev.json")


def test_every_template_and_asset_ships_in_the_wheel() -> None:
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["broker"]
    shipped = {p for g in globs for p in (REPO / "broker").glob(g)}
    files = {p for d in ("templates", "static") for p in (SITE / d).iterdir() if p.is_file()}
    assert files and files <= shipped


def test_keybroker_site_refuses_to_start_without_its_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEYBROKER_SITE_INTAKE_TOKEN", raising=False)
    assert serve_site() == 2
    assert "KEYBROKER_SITE_INTAKE_TOKEN" in capsys.readouterr().err


def test_keybroker_site_names_a_bad_setting_without_its_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYBROKER_SITE_INTAKE_TOKEN", "CANARY-TOKEN-1")
    monkeypatch.setenv("KEYBROKER_SITE_BROKER_TIMEOUT", "CANARY-soon")
    assert serve_site() == 2
    err = capsys.readouterr().err
    assert "broker_timeout" in err and "CANARY" not in err
    monkeypatch.setenv("KEYBROKER_SITE_BROKER_TIMEOUT", "5")
    monkeypatch.setenv("KEYBROKER_SITE_LISTEN", "nonsense")
    assert serve_site() == 2
    assert "CANARY" not in capsys.readouterr().err


def test_keybroker_site_runs_on_its_own_in_front_of_a_broker(dev: DevState) -> None:
    """`keybroker site` as its own process: the page answers and reaches the broker."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "devtools")]),
        "KEYBROKER_SITE_BROKER_URL": dev.broker_url,
        "KEYBROKER_SITE_INTAKE_TOKEN": dev.intake_token,
        "KEYBROKER_SITE_LISTEN": f"127.0.0.1:{port}",
        "KEYBROKER_ROBOT_EGRESS_IPS": "192.0.2.44",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "site"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "keybroker site did not start"
            time.sleep(0.1)
        page = requests.get(f"{url}/accounts/nobody", timeout=10)
        # 200 only when the broker took the intake token (any broker failure gives 503).
        assert page.status_code == 200 and "192.0.2.44" in page.text
        assert dev.intake_token not in page.text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert dev.intake_token not in output
