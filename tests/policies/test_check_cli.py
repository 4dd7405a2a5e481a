"""`keybroker policy check` / `policy matrix` through the real CLI (typer's CliRunner),
exit codes of docs/contracts.md §5: 0 pass, 1 violation, 2 error with file and line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli import app
from policies.check import default_policies_dir
from policies.invariants import InvariantsError, parse_invariants
from tests.policies.seeded_cases import policy_set

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["policy", *args])


def test_shipped_policies_pass_every_format() -> None:
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout
    result = invoke("check", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["violations"] == []
    result = invoke("check", "--format", "sarif")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == "2.1.0"


def test_violation_exits_1_with_counterexample(tmp_path: Path) -> None:
    seeded = policy_set(tmp_path, "broker-reads-key-data")
    result = invoke("check", "--policies", str(seeded.directory), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    (v,) = [v for v in doc["violations"] if v["id"] == "broker-never-reads-key-data"]
    assert v["path"] == "exchange-keys/data/site/x/x" and v["capability"] == "read"
    # Line 5 of the overlay: its `path "exchange-keys/data/site/+/+"` with `read`.
    assert v["file"].endswith("keybroker-broker.hcl")
    assert v["line"] == seeded.line("keybroker-broker.hcl", 5)
    assert v["principal"] == "broker" and v["policy"] == "keybroker-broker"


def test_malformed_hcl_exits_2_with_file_and_line(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), directory)
    (directory / "keybroker-intake.hcl").write_text('path "a" {\n  capabilities = ["banana"]\n}\n')
    result = invoke("check", "--policies", str(directory))
    assert result.exit_code == 2
    assert "keybroker-intake.hcl" in result.stderr and "banana" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("principals:\n  site: [keybroker-site-read]\ninvariants:\n  - id: x\n", 4, "missing"),
        ("principals:\n  site: [keybroker-site-read]\nbogus: 1\n", 3, "unknown key 'bogus'"),
        (
            "principals:\n  site: [keybroker-site-read]\ninvariants:\n  - id: x\n"
            "    principal: nobody\n    deny: [read]\n    paths: ['a/*']\n",
            5,
            "unknown principal",
        ),
        (
            "principals:\n  site: [keybroker-site-read]\ninvariants:\n  - id: x\n"
            "    principal: site\n    deny: [read, fly]\n    paths: ['a/*']\n",
            6,
            "unknown capability 'fly'",
        ),
        (
            "principals:\n  site: [keybroker-site-read]\ninvariants:\n  - id: x\n"
            "    principal: site\n    deny: [read]\n    paths:\n      - 'a/*'\n      - 'a/*/b'\n",
            9,
            "last character",
        ),
        (
            "principals:\n  site: [keybroker-site-read]\ninvariants:\n  - id: x\n"
            "    principal: site\n    deny: [read]\n    allow: [list]\n    paths: ['a']\n",
            4,
            "exactly one of deny/allow",
        ),
        ("principals:\n  site: [keybroker-site-read\n", 3, "invalid YAML"),
        ("principals:\n  site: [no-such-policy]\n", 2, "no policy 'no-such-policy'"),
    ],
)
def test_malformed_invariants_exit_2_with_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(text)
    result = invoke("check", "--invariants", str(inv), "--format", "json")
    assert result.exit_code == 2, result.output
    assert f"{inv}:{line}:" in result.stderr, result.stderr
    assert fragment in result.stderr
    result = invoke("matrix", "--invariants", str(inv))
    assert result.exit_code == 2


def test_invariants_error_carries_file_and_line() -> None:
    with pytest.raises(InvariantsError) as err:
        parse_invariants("principals: []\n", file="f.yaml")
    assert err.value.file == "f.yaml" and err.value.line == 1


def test_missing_policies_dir_exits_2(tmp_path: Path) -> None:
    result = invoke("check", "--policies", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_matrix_formats() -> None:
    result = invoke("matrix")
    assert result.exit_code == 0 and "site key data" in result.stdout
    doc = json.loads(invoke("matrix", "--format", "json").stdout)
    rows = {r["label"]: r for r in doc["rows"]}
    assert rows["site key data"]["access"]["site"]["read"]["level"] == "all"
    assert rows["robot key data"]["access"]["site"] == {}
    html = invoke("matrix", "--format", "html").stdout
    assert html.startswith("<!DOCTYPE html>")


def test_console_script_end_to_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "policy", "check", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] is True
