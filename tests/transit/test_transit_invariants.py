"""The Transit invariants of policies/invariants.yaml catch the mistakes they name.

Each case appends one mistaken stanza to a shipped Transit policy (in a copy of
policies/vault/) and `policy check` must report the invariant, located in that file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policies.check import check, default_policies_dir

CASES = {
    "broker-signs": (
        "keybroker-broker-transit.hcl",
        'path "exchange-signing/hmac/+" { capabilities = ["update"] }',
        "broker-cannot-sign",
    ),
    "site-signs-with-robot-keys": (
        "keybroker-site-transit.hcl",
        'path "exchange-signing/sign/robot-*" { capabilities = ["update"] }',
        "site-cannot-sign-with-robot-keys",
    ),
    "robot-signs-with-site-keys": (
        "keybroker-robot-transit.hcl",
        'path "exchange-signing/hmac/*" { capabilities = ["update"] }',
        "robot-cannot-sign-with-site-keys",
    ),
    "broker-exports": (
        "keybroker-broker-transit.hcl",
        'path "exchange-signing/export/hmac-key/+" { capabilities = ["read"] }',
        "nobody-can-export-a-key",
    ),
    "robot-backs-up": (
        "keybroker-robot-transit.hcl",
        'path "exchange-signing/backup/+" { capabilities = ["read"] }',
        "nobody-can-export-a-key",
    ),
    "site-loses-signing": (
        "keybroker-site-transit.hcl",
        'path "exchange-signing/hmac/site-*" { capabilities = ["deny"] }',
        "site-signs-with-site-keys",
    ),
}


def test_shipped_transit_policies_pass() -> None:
    report = check(None, None)
    assert report.passed, [v.message for v in report.violations]
    ids = {status.id for status in report.invariant_results}
    assert {
        "nobody-can-export-a-key",
        "site-cannot-sign-with-robot-keys",
        "broker-cannot-sign",
    } <= ids


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_transit_mistake_is_caught(case: str, tmp_path: Path) -> None:
    file, stanza, invariant = CASES[case]
    directory = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), directory)
    with (directory / file).open("a") as fh:
        fh.write(f"\n# MISTAKE\n{stanza}\n")
    report = check(directory, None)
    found = [v for v in report.violations if v.id == invariant]
    assert found, f"{case}: {[v.id for v in report.violations]}"
    # The counterexample names the stanza that grants (or, for an allow, denies) it.
    assert any(v.file and v.file.endswith(file) for v in found), [v.file for v in found]
