"""Identifier validation (docs/contracts.md §2 "Identifiers") and the raw-path guard."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import ids
from broker.ids import InvalidIdentifier

ENABLED = {"binance", "okx"}


@pytest.mark.parametrize("account", ["a", "0", "acct-1", "a_b-c", "a" * 64])
def test_accounts_that_match_the_contract_pattern(account: str) -> None:
    assert ids.validate_account(account) == account


@pytest.mark.parametrize(
    "account",
    [
        "",
        "-a",
        "_a",
        "A",
        "a" * 65,
        "..",
        "a/b",
        "a%2fb",
        "a\x00",
        "a\n",
        "a b",
        "\u0430",  # Cyrillic a
        "\uff41",  # fullwidth a
        "a\u200b",  # zero-width space
        "ǆ",
    ],
)
def test_accounts_outside_the_pattern_are_refused(account: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        ids.validate_account(account)
    assert "must match" in str(err.value)  # a fixed text: the input is never echoed


@given(st.text(max_size=70))
def test_any_accepted_account_is_a_single_safe_path_segment(value: str) -> None:
    try:
        ids.validate_account(value)
    except InvalidIdentifier:
        return
    assert value.isascii() and "/" not in value and value not in {".", ".."}
    assert value == value.lower() and value[0].isalnum()


def test_exchange_must_be_enabled() -> None:
    assert ids.validate_exchange("okx", ENABLED) == "okx"
    for bad in ("kraken", "Binance", "bin/ance", "..", "binance\x00", "b\u0456nance"):
        with pytest.raises(InvalidIdentifier):
            ids.validate_exchange(bad, ENABLED)


def test_role_is_site_or_robot() -> None:
    assert ids.validate_role("site") == "site"
    assert ids.validate_role("robot") == "robot"
    for bad in ("Site", "admin", "", "site/"):
        with pytest.raises(InvalidIdentifier):
            ids.validate_role(bad)


@pytest.mark.parametrize("name", ["x", "Main key", "Clé principale", "键", "n" * 64])
def test_names_may_be_any_printable_text(name: str) -> None:
    assert ids.validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "n" * 65, "a\x00b", "a\nb", "a\tb", "\x1b[31m", "a\u202eb", "a\u200bb", "a\u00a0b", " a"],
)
def test_names_with_control_or_invisible_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidIdentifier):
        ids.validate_name(name)


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/accounts/a%2fb/keys",
        b"/v1/accounts/a%2Fb/keys",
        b"/v1/accounts/%2e%2e/keys",
        b"/v1/accounts/../keys",
        b"/v1/accounts/./keys",
        b"/v1/accounts/a%00/keys",
        b"/v1/accounts/a%5cb/keys",
        b"/v1/accounts/a%0a/keys",
        b"/v1/accounts/a%e2%80%ae/keys",  # U+202E right-to-left override
        b"/v1/accounts/a%ff/keys",  # not UTF-8
        b"/v1/accounts//keys",
    ],
)
def test_raw_paths_that_would_split_or_hide_segments_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidIdentifier):
        ids.check_raw_path(raw)


def test_ordinary_raw_paths_pass() -> None:
    ids.check_raw_path(b"/v1/accounts/acct-1/keys/binance/site")
    ids.check_raw_path(b"/v1/accounts/caf%c3%a9/keys")  # decodes; the account check refuses it
