"""The words the page uses for rules, reasons and statuses (broker/site/guidance.py)."""

from __future__ import annotations

from broker.config import Settings
from broker.reasons import ReasonCode
from broker.site.guidance import ADVICE, STATUSES, advice_for, role_rules, status_text

# Key health's statuses (issue 15): the page must word each one when a view carries it.
KEY_HEALTH_STATUSES = (
    "connected",
    "expires_soon",
    "expired",
    "rights_changed",
    "revoked_at_exchange",
    "ip_not_allowed",
    "temporarily_unavailable",
    "unverified",
)


def test_every_reason_code_says_what_to_do() -> None:
    assert set(ADVICE) == set(ReasonCode)
    assert all(text.strip() for text in ADVICE.values())
    assert advice_for("withdraw_enabled").startswith("Create a new key")
    assert advice_for("no_such_code") == ""


def test_every_key_health_status_has_words() -> None:
    for status in (*KEY_HEALTH_STATUSES, "active"):
        assert status in STATUSES
        text = status_text(status)
        assert text.label and text.meaning and text.tone in ("ok", "warn", "bad", "neutral")
    assert status_text("something_new").label == "something new"


def test_robot_rules_list_the_configured_egress_addresses() -> None:
    rules = role_rules(
        "robot", "binance", Settings(robot_exchange_egress_ips=["203.0.113.10", "198.51.100.0/24"])
    )
    assert rules.addresses == ("203.0.113.10", "198.51.100.0/24")
    assert "no withdrawals" in rules.rights and "no futures" in rules.rights
    assert "futures allowed" in role_rules("robot", "binance", Settings(allow_futures=True)).rights


def test_site_rules_are_read_only_and_follow_the_whitelist_switch() -> None:
    site = role_rules("site", "binance", Settings())
    assert site.rights.startswith("Read-only") and site.addresses == ()
    assert site.whitelist == "An IP whitelist is recommended."
    listed = role_rules("site", "binance", Settings(site_exchange_egress_ips=["10.1.0.0/24"]))
    assert listed.addresses == ("10.1.0.0/24",) and "must hold these addresses" in listed.whitelist
    assert (
        "required"
        in role_rules("site", "binance", Settings(require_site_ip_restriction=True)).whitelist
    )
