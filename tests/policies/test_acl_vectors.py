"""Vault's own ACL test tables, transcribed to tests/policies/vectors/*.json.

Every vector names its Go test in `source` (hashicorp/vault vault/acl_test.go). The
allow/deny vectors run through the Python API and, as one batch, through
`keybroker policy eval --batch` (in-process and in one real subprocess).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from policies.acl import ACL
from policies.eval_cli import evaluate_stream

VECTORS = Path(__file__).parent / "vectors"
DECISION_FILES = [
    "acl_single.json",
    "acl_layered.json",
    "acl_allow_operation.json",
    "acl_value_permissions.json",
    "acl_segment_wildcard_priority.json",
    "acl_granting_policies.json",
    "acl_root.json",
    "docs_policies.json",
    "reference_sample.json",
]


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / name).read_text())


def _decision_vectors() -> list[Any]:
    cases = []
    for name in DECISION_FILES:
        for i, vector in enumerate(_load(name)):
            cases.append(pytest.param(vector, id=f"{name[:-5]}-{i}-{vector['operation']}"))
    return cases


DECISIONS = _decision_vectors()


@pytest.mark.parametrize("vector", DECISIONS)
def test_decision_vector(vector: dict[str, Any]) -> None:
    acl = ACL.from_texts(vector["policies"])
    result = acl.allow_operation(
        vector["path"], vector["operation"], vector.get("params"), vector.get("wrap_ttl_seconds")
    )
    asserted = vector.get("assert", ["allowed", "root_privs", "granting_policies"])
    if "allowed" in asserted:
        assert result.allowed is vector["allowed"]
    if "root_privs" in asserted and "root_privs" in vector:
        assert result.root_privs is vector["root_privs"]
    if "granting_policies" in asserted and "granting_policies" in vector:
        assert result.granting_policies == vector["granting_policies"]


def _batch_lines() -> tuple[list[str], list[bool]]:
    lines, expected = [], []
    for param in DECISIONS:
        vector = param.values[0]
        if "allowed" not in vector.get("assert", ["allowed"]):
            continue
        request = {k: vector[k] for k in ("policies", "path", "operation")}
        for optional in ("params", "wrap_ttl_seconds"):
            if optional in vector:
                request[optional] = vector[optional]
        lines.append(json.dumps(request))
        expected.append(vector["allowed"])
    return lines, expected


def test_batch_in_process_agrees_with_every_vector() -> None:
    lines, expected = _batch_lines()
    out = io.StringIO()
    evaluate_stream((line + "\n" for line in lines), out)
    results = [json.loads(x) for x in out.getvalue().splitlines()]
    assert results == [{"allowed": a} for a in expected]


def test_batch_cli_subprocess_agrees_with_every_vector() -> None:
    """One real `keybroker policy eval --batch -` process for the whole set."""
    lines, expected = _batch_lines()
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "policy", "eval", "--batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(x) for x in proc.stdout.splitlines()]
    assert results == [{"allowed": a} for a in expected]


@pytest.mark.parametrize("vector", _load("acl_policy_merge.json"), ids=lambda v: v["key"])
def test_policy_merge_vector(vector: dict[str, Any]) -> None:
    acl = ACL.from_texts(vector["policies"])
    rule = getattr(acl, vector["table"])[vector["key"]]
    assert rule.allowed_parameters == vector["allowed_parameters"]
    assert rule.denied_parameters == vector["denied_parameters"]
    assert list(rule.required_parameters) == vector["required_parameters"]
    if vector["min_wrapping_ttl"] is not None:
        assert rule.min_wrapping_ttl == vector["min_wrapping_ttl"]
        assert rule.max_wrapping_ttl == vector["max_wrapping_ttl"]


@pytest.mark.parametrize("vector", _load("acl_capabilities.json"), ids=lambda v: v["path"])
def test_capabilities_vector(vector: dict[str, Any]) -> None:
    assert ACL.from_texts(vector["policies"]).capabilities(vector["path"]) == vector["capabilities"]


@pytest.mark.parametrize("vector", _load("acl_bare_mount.json"), ids=lambda v: v["source"][-7:])
def test_bare_mount_vector(vector: dict[str, Any]) -> None:
    acl = ACL.from_texts(vector["policies"])
    assert (acl.check_bare_mount(vector["mount_path"]) is not None) is vector["has_perms"]


@pytest.mark.parametrize("vector", _load("acl_mfa_methods.json"), ids=lambda v: v["path"])
def test_mfa_methods_vector(vector: dict[str, Any]) -> None:
    acl = ACL.from_texts(vector["policies"])
    result = acl.allow_operation(vector["path"], vector["operation"])
    assert list(result.mfa_methods) == vector["mfa_methods"]
