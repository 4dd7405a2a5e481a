"""The words the page uses for rules, reasons and statuses (broker/site/guidance.py)."""

from __future__ import annotations

from broker.config import Settings
from broker.health.status import RIGHT_OF, KeyStatus
from broker.reasons import ReasonCode
from broker.site.guidance import (
    ADVICE,
    RIGHTS,
    STATUSES,
    advice_for,
    health_label,
    role_rules,
    status_text,
)


def test_every_reason_code_says_what_to_do() -> None:
    assert set(ADVICE) == set(ReasonCode)
    assert all(text.strip() for text in ADVICE.values())
    assert advice_for("withdraw_enabled").startswith("Create a new key")
    assert advice_for("no_such_code") == ""


def test_every_key_health_status_has_words() -> None:
    for status in (*KeyStatus, "active"):
        assert status in STATUSES
        text = status_text(status)
        assert text.label and text.meaning and text.tone in ("ok", "warn", "bad", "neutral")
        assert "{" not in text.meaning and text.meaning[0].isupper()
    assert status_text("something_new").label == "something new"
    assert "the site's address" in status_text("ip_not_allowed", "site").meaning


def test_every_right_key_health_names_has_words() -> None:
    assert set(RIGHTS) == set(RIGHT_OF.values())
    both = {"status": "rights_changed", "rights": ["withdraw", "ip_unrestricted"]}
    assert health_label(both) == "Rights changed: withdrawals enabled, IP whitelist removed"
    assert health_label({"status": "rights_changed", "rights": ["new_one"]}).endswith("new one")
    assert health_label({"status": "expires_soon", "expires_in_days": 0}) == "Expires today"
    assert health_label({"status": "expires_soon", "expires_in_days": 2}) == "Expires in 2 days"


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
