"""Facts that had drifted across modules (issue 11) are declared once, in broker/names.py,
broker/ids.py and broker/durations.py; this fails when a copy comes back."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOMES = {"broker/names.py", "broker/ids.py", "broker/durations.py"}

RESTATED = {
    "role names": re.compile(r'Literal\["site", "robot"\]|\("site", "robot"\)'),
    "default mount": re.compile(r'=\s*"exchange-keys"\s*$|"exchange-keys"\)\s*or\s'),
    "default transit mount": re.compile(r'=\s*"exchange-signing"\s*$'),
    "site token cap": re.compile(r"site_token_max_ttl\w*\s*[:=].*\b900\b|\"15m\""),
    "id patterns": re.compile(r"\[a-z0-9\]\[a-z0-9_-\]\{0,63\}|\[a-z0-9_?\]\{[0-9,]+\}"),
    "duration parsers": re.compile(r"def parse_duration\w*\(|def _go_duration\("),
}


def product_sources() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "broker", "policies", "infra", "devtools"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return [name for name in listed if name.endswith(".py") and name not in HOMES]


def test_no_module_restates_a_shared_fact() -> None:
    found = []
    for name in product_sources():
        for line_no, line in enumerate((REPO / name).read_text().splitlines(), 1):
            for fact, pattern in RESTATED.items():
                if pattern.search(line):
                    found.append(f"{name}:{line_no}: {fact}: {line.strip()}")
    # devvault's wrapper turns the shared parser's errors into Vault's 400s.
    allowed = {"devtools/keybroker_dev/devvault/durations.py"}
    assert [f for f in found if f.split(":")[0] not in allowed] == []


def test_the_homes_hold_the_facts() -> None:
    from broker import ids, names

    assert names.ROLES == ("site", "robot")
    assert names.DEFAULT_MOUNT == "exchange-keys"
    assert names.SITE_TOKEN_MAX_TTL_S == 15 * 60
    assert ids.ROLES is names.ROLES
    assert ids.ACCOUNT_PATTERN.fullmatch("alice") and not ids.EXCHANGE_PATTERN.fullmatch("a_b")
