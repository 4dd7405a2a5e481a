"""The one duration parser (broker/durations.py): Vault's syntax, used by the settings,
policy documents, devvault and the runtime client alike."""

from __future__ import annotations

import os
from typing import Any

import pytest

from broker import config, durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300),
        (300, 300),
        ("90s", 90),
        ("5m", 300),
        ("14m59s", 899),  # refused by the settings parser before issue 11
        ("1h30m", 5400),  # likewise
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        (" 5m ", 300),  # settings may carry blanks from a file or the shell
        (0.5, 0.5),
    ],
)
def test_parse_duration_accepts_vault_and_go_forms(text: Any, seconds: float) -> None:
    assert durations.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", " ", "5 minutes", "-1s", "1y", "m", "5m3", True, [5], "0.5"])
def test_parse_duration_refuses_with_a_typed_error(bad: Any) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse_duration(bad)


def test_parse_duration_second_is_vaults_decoder() -> None:
    """parseutil.ParseDurationSecond: floats truncate, "" is 0, negatives pass through."""
    assert durations.parse_duration_second(2.9) == 2
    assert durations.parse_duration_second("") == 0
    assert durations.parse_duration_second("-5") == -5
    assert durations.parse_duration_second("1m0.5s") == pytest.approx(60.5)
    with pytest.raises(durations.DurationError, match='unknown unit "x"'):
        durations.parse_go_duration("5x")
    with pytest.raises(durations.DurationError, match="missing unit"):
        durations.parse_go_duration("5")


@pytest.mark.parametrize(
    ("seconds", "short", "go"),
    [(300, "5m", "5m0s"), (90, "90s", "1m30s"), (5400, "90m", "1h30m0s"), (0, "0s", "0s")],
)
def test_formats_round_trip(seconds: int, short: str, go: str) -> None:
    assert durations.format_duration(seconds) == short
    assert durations.go_duration(seconds) == go
    assert durations.parse_duration(short) == seconds
    assert durations.parse_duration(go) == seconds


def test_every_part_uses_the_one_parser() -> None:
    from broker import client, site_tokens
    from keybroker_dev.devvault import durations as devvault_durations
    from policies import hcl, hcl_policy

    assert config.parse_duration is durations.parse_duration
    assert client.parse_duration is durations.parse_duration
    assert site_tokens.parse_duration is durations.parse_duration
    assert hcl.parse_duration_second is durations.parse_duration_second
    assert hcl_policy.parse_duration_second is durations.parse_duration_second
    assert devvault_durations.parse_duration_second is durations.parse_duration_second


def test_settings_take_go_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KEYBROKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KEYBROKER_SITE_TOKEN_TTL", "4m30s")
    monkeypatch.setenv("KEYBROKER_SITE_TOKEN_MAX_TTL", "14m59s")
    settings = config.load_settings()
    assert (settings.site_token_ttl, settings.site_token_max_ttl) == (270, 899)
