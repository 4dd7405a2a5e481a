"""`policy check` on seeded mistakes: each case in tests/policies/seeded/<case>/ overlays
one shipped policy with its mistaken stanzas (marked `# MISTAKE`; tests/policies/
seeded_cases.py) and lists, in expect.json, the violations that must be reported (id, and
where given: file:line, the line counted in the overlay, capability, principal,
counterexample path, and for escalations the chain (a prefix of the reported one) and the
kinds of its edges, in order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.check import check, run_check
from policies.invariants import default_invariants_path
from tests.policies.seeded_cases import CASES, SEEDED, apply_overlay, policy_set


def test_at_least_ten_seeded_mistakes() -> None:
    assert len(CASES) >= 10


def test_shipped_policies_pass() -> None:
    report = check(None, None)
    assert report.passed, [v.message for v in report.violations]
    assert report.warnings == []


@pytest.mark.parametrize("case", CASES)
def test_seeded_mistake_is_caught(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    seeded = policy_set(tmp_path, case)
    expect = json.loads((SEEDED / case / "expect.json").read_text())
    overlay = seeded.overlay

    code = run_check(seeded.directory, None, "json")
    doc = json.loads(capsys.readouterr().out)

    assert code == 1
    assert doc["passed"] is False
    for want in expect["violations"]:
        matches = [v for v in doc["violations"] if v["id"] == want["id"]]
        assert matches, f"{case}: no {want['id']} in {[v['id'] for v in doc['violations']]}"
        file = want.get("file", overlay)
        matches = [v for v in matches if v["file"] and v["file"].endswith(file)]
        assert matches, f"{case}: {want['id']} not located in {file}"
        if "line" in want:
            lines = [v["line"] for v in matches]
            line = seeded.line(file, want["line"]) if file == overlay else want["line"]
            assert line in lines, f"{case}: {want['id']} at lines {lines}"
        for key in ("capability", "principal", "path"):
            if key in want:
                assert want[key] in [v[key] for v in matches], (case, key, matches)
        if "chain" in want:
            chains = [v.get("chain", "") for v in matches]
            assert any(c.startswith(want["chain"]) for c in chains), (case, chains)
            kinds = [[step["kind"] for step in v["via"]] for v in matches]
            assert want["kinds"] in kinds, (case, kinds)
            for v in matches:  # every edge is located and cites its Vault document
                for step in v["via"]:
                    assert (
                        step["file"] and step["line"] and "docs/facts/escalation.md" in step["doc"]
                    )
        for v in matches:
            assert v["path"] and "+" not in v["path"] and "*" not in v["path"]


def test_counterexample_is_genuine_for_every_invariant_violation(tmp_path: Path) -> None:
    """Every reported path really is in the invariant's pattern and really violates it."""
    from policies.analysis import validate_pattern
    from policies.analysis.escalation import Credential
    from policies.check import load_inputs

    for case in CASES:
        directory = policy_set(tmp_path / case, case).directory
        inputs = load_inputs(directory, None)
        report = check(directory, None)
        by_id = {inv.id: inv for inv in inputs.invariants.invariants}
        for v in report.violations:
            inv = by_id.get(v.id)
            if inv is None:
                continue
            assert any(validate_pattern(p).matches(v.path) for p in inv.paths), v
            principal = inputs.principals[v.principal]
            if v.via:  # held by the credential at the end of the chain
                gains = v.via[-1].gains
                end = Credential(frozenset(gains or ()), gains is None, ())
                principal = inputs.reach.principal(end)
            if inv.effect == "deny":
                assert principal.may(v.path, v.capability)[0], v
            else:
                assert not principal.must(v.path, v.capability)[0], v
    assert default_invariants_path().exists()


def test_an_overlay_replaces_in_place_or_adds() -> None:
    shipped = ['path "a" {', '  capabilities = ["read"]', "}", 'path "b" {', "}"]
    overlay = [
        "# MISTAKE: a widened",  # 1
        'path "a" {',  # 2
        '  capabilities = ["read", "sudo"]',  # 3
        "}",  # 4
        '# REPLACES: path "b"',  # 5
        'path "b/+" {',  # 6
        "}",  # 7
        'path "c" {',  # 8
        "}",  # 9
    ]
    merged = apply_overlay(shipped, overlay)
    assert [text for text, _ in merged] == [*overlay[:7], "", *overlay[7:]]
    assert [n for _, n in merged] == [1, 2, 3, 4, 5, 6, 7, None, 8, 9]
