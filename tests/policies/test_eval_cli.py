"""`keybroker policy eval` as docs/contracts.md §5 specifies it: allow/deny with exit 0/1,
exit 2 and one clear stderr line for every kind of bad input, and a batch mode that
answers every input line and never aborts the stream."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli import app
from policies.eval_cli import evaluate_stream, run_batch, run_single

SITE = """
path "kv/data/site/+" {
  capabilities = ["read"]
}
path "kv/data/robot/*" {
  capabilities = ["deny"]
}
path "sys/wrapping/wrap" {
  capabilities = ["update"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "10m"
}
path "kv/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "max_versions" = [5, 10]
  }
}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.hcl"
    path.write_text(SITE)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = run_single(*args)  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    return code, out, err


def test_allow_and_deny(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, [site], "kv/data/site/u1", "read", [], None) == (0, "allow\n", "")
    assert run(capsys, [site], "kv/data/robot/u1", "read", [], None) == (1, "deny\n", "")
    assert run(capsys, [site], "kv/data/site/u1", "update", [], None)[0] == 1


def test_params_and_wrap_ttl(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, [site], "kv/config", "update", ["max_versions=10"], None)[0] == 0
    assert run(capsys, [site], "kv/config", "update", ["max_versions=7"], None)[0] == 1
    assert run(capsys, [site], "kv/config", "update", ['max_versions="10"'], None)[0] == 1
    assert run(capsys, [site], "sys/wrapping/wrap", "update", [], 300)[0] == 0
    assert run(capsys, [site], "sys/wrapping/wrap", "update", [], 3600)[0] == 1
    assert run(capsys, [site], "sys/wrapping/wrap", "update", [], None)[0] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], "a", "read", [], None), "at least one --policy"),
        ((None, None, "read", [], None), "--path is required"),
        ((None, "a", None, [], None), "--op is required"),
        ((None, "a", "sudo", [], None), "unknown operation 'sudo'"),
        ((None, "a", "read", ["novalue"], None), "KEY=JSON"),
        ((None, "a", "read", ["k=not json"], None), "--param k: value is not valid JSON"),
        ((None, "a", "read", [], -5), "cannot be negative"),
    ],
)
def test_usage_errors_exit_2(
    site: Path, capsys: pytest.CaptureFixture[str], args: tuple, message: str
) -> None:
    policies = [site] if args[0] is None else args[0]
    code, out, err = run(capsys, policies, *args[1:])
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1


def test_param_error_does_not_echo_the_value(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = "CANARY-s3cr3t-value"
    for option in (canary, f"k={canary}"):
        code, _, err = run(capsys, [site], "a", "read", [option], None)
        assert code == 2 and canary not in err


def test_unreadable_file_and_parse_error_name_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.hcl"
    code, _, err = run(capsys, [missing], "a", "read", [], None)
    assert code == 2 and "cannot read" in err and "missing.hcl" in err
    bad = tmp_path / "bad.hcl"
    bad.write_text('path "a" {\n  capabilities = ["read"]\n}\npath "b" {\n  policy = "banana"\n}\n')
    code, _, err = run(capsys, [bad], "a", "read", [], None)
    assert code == 2 and f"{bad}:4:" in err and 'invalid policy "banana"' in err


def test_root_cannot_be_loaded_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root.hcl"
    root.write_text("")
    code, _, err = run(capsys, [root], "sys/seal", "update", [], None)
    assert code == 2 and 'cannot load a policy named "root"' in err


def test_batch_answers_every_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"policies": [SITE], "path": "kv/data/site/u1", "operation": "read"}
    lines = [
        json.dumps(good),
        json.dumps({**good, "path": "kv/data/robot/u1"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**good, "operation": "sudo"}),
        json.dumps({**good, "policies": ['path "a" { policy = "banana" }']}),
        json.dumps({**good, "params": [1]}),
        json.dumps({**good, "wrap_ttl_seconds": "5m"}),
        "",
        json.dumps(
            {
                "policies": [SITE],
                "path": "kv/config",
                "operation": "update",
                "params": {"max_versions": 5},
            }
        ),
        json.dumps(
            {
                "policies": [SITE],
                "path": "sys/wrapping/wrap",
                "operation": "update",
                "wrap_ttl_seconds": 120,
            }
        ),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert run_batch("-") == 0
    results = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(results) == len(lines)
    assert results[0] == {"allowed": True}
    assert results[1] == {"allowed": False}
    assert all(set(r) == {"error"} for r in results[2:9])
    assert "unknown operation" in results[4]["error"]
    assert 'invalid policy "banana"' in results[5]["error"]
    assert results[9:] == [{"allowed": True}, {"allowed": True}]


def test_batch_from_file_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"policies": [], "path": "a", "operation": "help"}) + "\n")
    assert run_batch(str(source)) == 0
    assert capsys.readouterr().out == '{"allowed": true}\n'
    assert run_batch(str(tmp_path / "nope.jsonl")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_wired_into_the_keybroker_cli(site: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app, ["policy", "eval", "--policy", str(site), "--path", "kv/data/site/u", "--op", "read"]
    )
    assert (ok.exit_code, ok.stdout) == (0, "allow\n")
    denied = runner.invoke(
        app,
        [
            "policy",
            "eval",
            "--policy",
            str(site),
            "--path",
            "kv/config",
            "--op",
            "update",
            "--param",
            "max_versions=7",
        ],
    )
    assert (denied.exit_code, denied.stdout) == (1, "deny\n")


def test_two_files_with_one_policy_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    first, second = tmp_path / "site.hcl", tmp_path / "a" / "Site.json"
    first.write_text('path "x" { capabilities = ["read"] }')
    second.write_text('{"path": {"x": {"capabilities": ["deny"]}}}')
    code, _, err = run(capsys, [first, second], "x", "read", [], None)
    assert code == 2 and 'policy "site" is defined twice' in err
    # The same file given twice is one policy, not a conflict.
    assert run(capsys, [first, first], "x", "read", [], None)[0] == 0


# -- defects reported in issue 11 (each failed on the code before the fix) ---------------

LISTER = 'path "kv/metadata/site/*" {\n  capabilities = ["list"]\n}\n'


def test_list_without_trailing_slash_answers_as_vault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`LIST /v1/kv/metadata/site` reaches the ACL as `kv/metadata/site/` (Vault's
    http/logical.go appends the slash), which `kv/metadata/site/*` allows."""
    policy = tmp_path / "lister.hcl"
    policy.write_text(LISTER)
    assert run(capsys, [policy], "kv/metadata/site", "list", [], None) == (0, "allow\n", "")
    assert run(capsys, [policy], "kv/metadata/site/", "list", [], None)[0] == 0
    # Only list gets the slash: a read of the same path is still not under the glob.
    assert run(capsys, [policy], "kv/metadata/site", "read", [], None)[0] == 1
    line = json.dumps({"policies": [LISTER], "path": "kv/metadata/site", "operation": "list"})
    out = io.StringIO()
    evaluate_stream([line], out)
    assert json.loads(out.getvalue()) == {"allowed": True}


def test_batch_applies_policy_files_to_every_line(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"path": "kv/data/site/u1", "operation": "read"},
        {"path": "kv/data/robot/u1", "operation": "read"},
        # The line's own policies add to the files' (here: the robot path is still denied).
        {"policies": [LISTER], "path": "kv/metadata/site/", "operation": "list"},
        {
            "policies": ['path "kv/data/robot/*" { capabilities = ["read"] }'],
            "path": "kv/data/robot/u1",
            "operation": "read",
        },
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(x) + "\n" for x in lines)))
    assert run_batch("-", [site]) == 0
    results = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert results == [{"allowed": True}, {"allowed": False}, {"allowed": True}, {"allowed": False}]


def test_batch_exits_2_when_every_line_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["{not json", json.dumps({"path": "a", "operation": "read"})]  # no policies
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(bad) + "\n"))
    assert run_batch("-") == 2
    out, err = capsys.readouterr()
    assert [set(json.loads(x)) for x in out.splitlines()] == [{"error"}, {"error"}]
    assert "every one of the 2 batch line(s) failed" in err
    # One good line is enough for exit 0; an empty batch is not a failure either.
    good = json.dumps({"policies": [], "path": "a", "operation": "help"})
    monkeypatch.setattr(sys, "stdin", io.StringIO(bad[0] + "\n" + good + "\n"))
    assert run_batch("-") == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run_batch("-") == 0


def test_batch_through_the_cli_honours_policy_and_refuses_single_options(site: Path) -> None:
    runner = CliRunner()
    line = json.dumps({"path": "kv/data/site/u1", "operation": "read"}) + "\n"
    done = runner.invoke(app, ["policy", "eval", "--policy", str(site), "--batch", "-"], input=line)
    assert (done.exit_code, done.stdout) == (0, '{"allowed": true}\n')
    mixed = runner.invoke(
        app, ["policy", "eval", "--batch", "-", "--path", "kv/x", "--op", "read"], input=line
    )
    assert mixed.exit_code == 2
