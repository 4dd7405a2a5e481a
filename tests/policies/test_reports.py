"""Report renderers: SARIF 2.1.0 shape, JSON contract, text table, self-contained HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from policies.check import check
from policies.matrix import build_matrix
from policies.report import render_check, render_matrix
from tests.policies.seeded_cases import SeededSet, policy_set

# The parts of the SARIF 2.1.0 schema (sarif-schema-2.1.0.json) that code-scanning
# tools rely on (docs/facts/pulumi.md §6): required members, enums, types.
SARIF_SUBSET = {
    "type": "object",
    "required": ["version", "$schema", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "pattern": "sarif-2\\.1\\.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "shortDescription", "help"],
                                            "properties": {
                                                "id": {"type": "string", "minLength": 1},
                                                "shortDescription": {
                                                    "type": "object",
                                                    "required": ["text"],
                                                },
                                                "help": {"type": "object", "required": ["text"]},
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {
                                                        "level": {
                                                            "enum": [
                                                                "none",
                                                                "note",
                                                                "warning",
                                                                "error",
                                                            ]
                                                        }
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "level", "message", "locations"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": 0},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {"text": {"type": "string", "minLength": 1}},
                                },
                                "locations": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["physicalLocation"],
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "required": ["uri"],
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine"],
                                                        "properties": {
                                                            "startLine": {
                                                                "type": "integer",
                                                                "minimum": 1,
                                                            }
                                                        },
                                                    },
                                                },
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def failing_set(tmp_path_factory: pytest.TempPathFactory) -> SeededSet:
    cases = ("plus-segment-site-reads-robot", "token-create-without-role")
    return policy_set(tmp_path_factory.mktemp("p"), *cases)


@pytest.fixture(scope="module")
def failing_report(failing_set: SeededSet):
    return check(failing_set.directory, None)


def test_sarif_has_the_shape_code_scanning_accepts(failing_report, failing_set) -> None:
    doc = json.loads(render_check(failing_report, "sarif"))
    jsonschema.validate(doc, SARIF_SUBSET)
    run = doc["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    assert {"KB101", "KB110", "site-never-touches-robot-keys"} <= set(rule_ids)
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].endswith(".hcl")
        assert result["partialFingerprints"]
    hit = next(r for r in run["results"] if r["ruleId"] == "site-never-touches-robot-keys")
    # Line 6 of the overlay: its `path "exchange-keys/data/+/+/+"`.
    line = failing_set.line("keybroker-site-read.hcl", 6)
    assert hit["locations"][0]["physicalLocation"]["region"]["startLine"] == line
    assert hit["level"] == "error"


def test_sarif_of_a_passing_run_has_rules_and_no_results() -> None:
    doc = json.loads(render_check(check(None, None), "sarif"))
    jsonschema.validate(doc, SARIF_SUBSET)
    assert doc["runs"][0]["results"] == []
    assert len(doc["runs"][0]["tool"]["driver"]["rules"]) >= 12


def test_json_is_the_contract(failing_report) -> None:
    doc = json.loads(render_check(failing_report, "json"))
    assert doc["passed"] is False
    keys = {"id", "principal", "capability", "path", "policy", "file", "line", "message"}
    for v in doc["violations"]:
        # The contract's record, plus `via` (the escalation chain) and, with one, `chain`.
        assert keys <= set(v) <= keys | {"via", "chain"}
        assert isinstance(v["via"], list) and bool(v["via"]) == ("chain" in v)
        assert isinstance(v["line"], int) and v["line"] >= 1


def test_text_is_a_table_with_a_verdict(failing_report) -> None:
    out = render_check(failing_report, "text")
    assert "site-never-touches-robot-keys" in out and "FAIL" in out
    assert "exchange-keys/data/robot/x/x" in out
    assert "PASS" in render_check(check(None, None), "text")


def test_unknown_format_is_refused(failing_report) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render_check(failing_report, "xml")


def test_html_matrix_is_self_contained() -> None:
    page = render_matrix(build_matrix(None, None), "html")
    assert page.startswith("<!DOCTYPE html>")
    # No external assets: no src/href attributes, no @import or url() in the CSS.
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "@import" not in page and "url(" not in page
    assert "<style>" in page and "legend" in page
    assert "site key data" in page and "keybroker-broker" in page
    assert 'class="cap all read"' in page
    assert "<h2>Invariants</h2>" in page and 'class="ok">holds' in page
    assert 'class="bad"' not in page


def test_html_matrix_shows_violated_invariants(tmp_path: Path) -> None:
    directory = policy_set(tmp_path, "sys-wildcard-read").directory
    page = render_matrix(build_matrix(directory, None), "html")
    assert 'class="bad">violated' in page and "nobody-touches-sys" in page


def test_html_escapes_labels(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "principals:\n  site: [keybroker-site-read]\n"
        "matrix:\n  - {label: '<script>x</script>', path: 'exchange-keys/*'}\n"
    )
    page = render_matrix(build_matrix(None, inv), "html")
    assert "<script>" not in page and "&lt;script&gt;" in page
