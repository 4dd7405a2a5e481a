"""broker.rules against docs/contracts.md §4: every reason code, its severity and its trigger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.reasons import Inspection, Permissions, ReasonCode, Severity
from broker.rules import accepted, evaluate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROBOT_IP = "203.0.113.10"
SITE_IP = "198.51.100.20"


@dataclass
class Cfg:
    robot_egress_ips: list[str] = field(default_factory=lambda: [ROBOT_IP])
    site_egress_ips: list[str] = field(default_factory=list)
    allow_futures: bool = False
    require_site_ip_restriction: bool = False
    accept_unverifiable: bool = False

    def egress_for(self, role: str) -> list[str]:
        return self.robot_egress_ips if role == "robot" else self.site_egress_ips

    def futures_allowed(self, exchange: str) -> bool:
        return self.allow_futures

    def unverifiable_accepted(self, exchange: str) -> bool:
        return self.accept_unverifiable


SITE_RIGHTS = Permissions(read=True)
ROBOT_RIGHTS = Permissions(read=True, spot_trade=True)


def inspection(
    permissions: Permissions = ROBOT_RIGHTS,
    whitelist: list[str] | None = (ROBOT_IP,),  # type: ignore[assignment]
    restricted: bool | None = None,
    **extra: object,
) -> Inspection:
    wl = None if whitelist is None else list(whitelist)
    if restricted is None and wl is not None:
        restricted = bool(wl)
    return Inspection(
        exchange="test",
        permissions=permissions,
        ip_restricted=restricted,
        ip_whitelist=wl,
        **extra,  # type: ignore[arg-type]
    )


def codes(reasons) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.code.value: r.severity.value for r in reasons}


def run(insp: Inspection, role: str = "robot", cfg: Cfg | None = None):  # type: ignore[no-untyped-def]
    return evaluate(insp, role, cfg or Cfg(), now=NOW)


def test_good_keys_accepted_without_reasons() -> None:
    assert run(inspection(SITE_RIGHTS), "site") == []
    assert run(inspection(ROBOT_RIGHTS), "robot") == []
    assert accepted([])


@pytest.mark.parametrize("role", ["site", "robot"])
def test_withdraw_and_transfer_always_refused(role: str) -> None:
    rights = Permissions(read=True, spot_trade=role == "robot", withdraw=True, transfer=True)
    found = codes(run(inspection(rights), role))
    assert found["withdraw_enabled"] == "error"
    assert found["transfer_enabled"] == "error"


@pytest.mark.parametrize("right", ["spot_trade", "margin", "futures"])
def test_site_key_must_be_read_only(right: str) -> None:
    rights = Permissions(read=True, **{right: True})
    found = codes(run(inspection(rights), "site", Cfg(allow_futures=True)))
    assert found == {"trade_enabled": "error"}


@pytest.mark.parametrize("role", ["site", "robot"])
def test_read_disabled(role: str) -> None:
    rights = Permissions(read=False, spot_trade=role == "robot")
    assert codes(run(inspection(rights), role)) == {"read_disabled": "error"}


def test_robot_key_must_spot_trade() -> None:
    assert codes(run(inspection(SITE_RIGHTS), "robot")) == {"trade_disabled": "error"}
    # margin or futures alone are not spot trading
    rights = Permissions(read=True, margin=True, futures=True)
    assert "trade_disabled" in codes(run(inspection(rights), "robot", Cfg(allow_futures=True)))


def test_futures_only_when_allowed() -> None:
    rights = Permissions(read=True, spot_trade=True, futures=True)
    assert codes(run(inspection(rights))) == {"futures_enabled": "error"}
    assert run(inspection(rights), cfg=Cfg(allow_futures=True)) == []


def test_ip_unrestricted_error_for_robot_warning_for_site() -> None:
    assert codes(run(inspection(whitelist=[]), "robot")) == {"ip_unrestricted": "error"}
    assert codes(run(inspection(SITE_RIGHTS, whitelist=[]), "site")) == {
        "ip_unrestricted": "warning"
    }
    required = Cfg(require_site_ip_restriction=True)
    assert codes(run(inspection(SITE_RIGHTS, whitelist=[]), "site", required)) == {
        "ip_unrestricted": "error"
    }
    # restricted=False wins even if a list were reported
    assert "ip_unrestricted" in codes(run(inspection(whitelist=[ROBOT_IP], restricted=False)))


@pytest.mark.parametrize("everything", ["0.0.0.0/0", "::/0"])
def test_allow_all_whitelist_is_unrestricted(everything: str) -> None:
    assert codes(run(inspection(whitelist=[everything, ROBOT_IP]))) == {"ip_unrestricted": "error"}


def test_whitelist_missing_robot_egress_is_mismatch() -> None:
    found = codes(run(inspection(whitelist=["192.0.2.1"])))
    assert found == {"ip_whitelist_mismatch": "error", "ip_whitelist_extra": "warning"}


def test_every_egress_must_be_listed_and_cidrs_cover() -> None:
    cfg = Cfg(robot_egress_ips=[ROBOT_IP, "203.0.113.64/26"])
    assert codes(run(inspection(whitelist=[ROBOT_IP]), cfg=cfg)) == {
        "ip_whitelist_mismatch": "error"
    }
    # a wider entry covers both, and is wider than needed
    assert codes(run(inspection(whitelist=["203.0.113.0/24"]), cfg=cfg)) == {
        "ip_whitelist_extra": "warning"
    }
    assert run(inspection(whitelist=[ROBOT_IP, "203.0.113.64/26"]), cfg=cfg) == []
    # a narrower entry does not cover a wider required CIDR
    assert "ip_whitelist_mismatch" in codes(
        run(inspection(whitelist=[ROBOT_IP, "203.0.113.64/27"]), cfg=cfg)
    )


def test_extra_entries_warn() -> None:
    found = codes(run(inspection(whitelist=[ROBOT_IP, "198.51.100.7"])))
    assert found == {"ip_whitelist_extra": "warning"}
    reason = run(inspection(whitelist=[ROBOT_IP, "198.51.100.7"]))[0]
    assert "198.51.100.7" in reason.message


def test_garbage_entry_never_covers() -> None:
    found = codes(run(inspection(whitelist=["not-an-ip"])))
    assert found == {"ip_whitelist_mismatch": "error", "ip_whitelist_extra": "warning"}


def test_ipv6_egress() -> None:
    cfg = Cfg(robot_egress_ips=["2001:db8::10"])
    assert run(inspection(whitelist=["2001:db8::10"]), cfg=cfg) == []
    assert codes(run(inspection(whitelist=["2001:db8::/64"]), cfg=cfg)) == {
        "ip_whitelist_extra": "warning"
    }
    assert "ip_whitelist_mismatch" in codes(run(inspection(whitelist=[ROBOT_IP]), cfg=cfg))


def test_site_keys_checked_against_site_egress() -> None:
    cfg = Cfg(site_egress_ips=[SITE_IP])
    assert run(inspection(SITE_RIGHTS, whitelist=[SITE_IP]), "site", cfg) == []
    found = codes(run(inspection(SITE_RIGHTS, whitelist=[ROBOT_IP]), "site", cfg))
    assert found == {"ip_whitelist_mismatch": "error", "ip_whitelist_extra": "warning"}


# --- masked entries (KuCoin `203.**.154`, docs/facts/exchanges.md KuCoin) -----------------


def test_masked_entry_consistent_with_egress_is_unverifiable_not_proof() -> None:
    found = codes(run(inspection(whitelist=["203.**.10"])))
    assert found == {"ip_whitelist_unverifiable": "warning"}


def test_masked_entry_inconsistent_with_egress_is_mismatch() -> None:
    # the last octet shows it cannot be 203.0.113.10
    found = codes(run(inspection(whitelist=["203.**.154"])))
    assert found == {"ip_whitelist_mismatch": "error", "ip_whitelist_extra": "warning"}


def test_masked_entry_never_covers_a_cidr() -> None:
    cfg = Cfg(robot_egress_ips=["203.0.113.0/24"])
    assert "ip_whitelist_mismatch" in codes(run(inspection(whitelist=["203.**.*"]), cfg=cfg))


def test_masked_plus_exact_entry_is_fine() -> None:
    found = codes(run(inspection(whitelist=[ROBOT_IP, "203.**.10"])))
    assert found == {}


@given(
    st.lists(st.integers(0, 255), min_size=4, max_size=4),
    st.lists(st.integers(0, 255), min_size=4, max_size=4),
)
def test_masked_entry_proves_nothing(listed: list[int], egress: list[int]) -> None:
    """Whatever the hidden octets, a masked entry alone never yields acceptance silently."""
    masked = f"{listed[0]}.**.{listed[3]}"
    cfg = Cfg(robot_egress_ips=[".".join(map(str, egress))])
    found = codes(run(inspection(whitelist=[masked]), cfg=cfg))
    assert found.get("ip_whitelist_unverifiable") == "warning" or (
        found.get("ip_whitelist_mismatch") == "error"
    )
    consistent = listed[0] == egress[0] and listed[3] == egress[3]
    assert ("ip_whitelist_mismatch" in found) == (not consistent)


# --- exchanges that do not disclose the list (Binance: docs/facts/exchanges.md) -------------


def test_restricted_without_list_warns_unverifiable() -> None:
    insp = inspection(whitelist=None, restricted=True)
    assert codes(run(insp)) == {"ip_whitelist_unverifiable": "warning"}
    verified = inspection(whitelist=None, restricted=True, ip_whitelist_verified=True)
    assert run(verified) == []


def test_unknown_restriction_warns_unverifiable() -> None:
    assert codes(run(inspection(whitelist=None, restricted=None))) == {
        "ip_whitelist_unverifiable": "warning"
    }


def test_unrestricted_without_list() -> None:
    assert codes(run(inspection(whitelist=None, restricted=False))) == {"ip_unrestricted": "error"}


# --- expiry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-1), {"key_expired": "error"}),
        (timedelta(0), {"key_expired": "error"}),
        (timedelta(days=1), {"key_expiring": "warning"}),
        (timedelta(days=14), {"key_expiring": "warning"}),
        (timedelta(days=14, seconds=1), {}),
        (timedelta(days=400), {}),
    ],
)
def test_expiry(delta: timedelta, expected: dict[str, str]) -> None:
    assert codes(run(inspection(expires_at=NOW + delta))) == expected


def test_naive_expiry_is_utc() -> None:
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    assert codes(run(inspection(expires_at=naive))) == {"key_expired": "error"}


# --- blocking reasons and general properties ---------------------------------------------------


def test_unknown_role_is_a_typed_error() -> None:
    with pytest.raises(ValueError, match="role"):
        run(inspection(), "admin")


permissions = st.builds(
    Permissions,
    read=st.booleans(),
    spot_trade=st.booleans(),
    margin=st.booleans(),
    futures=st.booleans(),
    withdraw=st.booleans(),
    transfer=st.booleans(),
)


@given(permissions, st.sampled_from(["site", "robot"]), st.booleans())
def test_acceptance_implies_contract(perms: Permissions, role: str, allow_futures: bool) -> None:
    """Property: whatever the rights, an accepted key satisfies every §4 rule."""
    reasons = run(inspection(perms), role, Cfg(allow_futures=allow_futures))
    for reason in reasons:
        if reason.code in {ReasonCode.KEY_EXPIRING, ReasonCode.IP_WHITELIST_EXTRA}:
            assert reason.severity is Severity.WARNING
    if accepted(reasons):
        assert perms.read and not perms.withdraw and not perms.transfer
        assert allow_futures or not perms.futures
        if role == "site":
            assert not (perms.spot_trade or perms.margin or perms.futures)
        else:
            assert perms.spot_trade
    # deterministic: same input, same reasons in the same order
    assert reasons == run(inspection(perms), role, Cfg(allow_futures=allow_futures))


# --- rights the exchange cannot report (MEXC) ---------------------------------------------


@pytest.mark.parametrize(
    ("unverified", "role", "cfg", "decides"),
    [
        ({"withdraw"}, "robot", Cfg(), True),
        ({"transfer"}, "site", Cfg(), True),
        ({"futures"}, "robot", Cfg(), True),
        ({"futures"}, "robot", Cfg(allow_futures=True), False),  # would be accepted anyway
        ({"futures"}, "site", Cfg(allow_futures=True), True),  # a site key must not trade
        ({"margin"}, "robot", Cfg(), False),  # robots may trade on margin
        ({"margin"}, "site", Cfg(), True),
        ({"spot_trade"}, "robot", Cfg(), True),
        ({"spot_trade"}, "site", Cfg(), True),
    ],
)
def test_unreported_rights_are_unverifiable_where_they_decide(
    unverified: set[str], role: str, cfg: Cfg, decides: bool
) -> None:
    rights = SITE_RIGHTS if role == "site" else ROBOT_RIGHTS
    if "spot_trade" in unverified:
        rights = Permissions(read=True)
    insp = inspection(rights, unverified=frozenset(unverified))
    found = codes(run(insp, role, cfg))
    assert found == ({"unverifiable": "error"} if decides else {})
    cfg.accept_unverifiable = True
    assert codes(run(insp, role, cfg)) == ({"unverifiable": "warning"} if decides else {})


def test_one_unverifiable_reason_names_every_unread_right_and_the_setting() -> None:
    insp = inspection(unverified=frozenset({"withdraw", "transfer", "futures"}))
    (reason,) = run(insp)
    assert "withdraw, transfer funds or trade futures" in reason.message
    assert "KEYBROKER_ACCEPT_UNVERIFIABLE=test" in reason.message


@pytest.mark.parametrize(
    ("build", "role", "names"),
    [
        (lambda: inspection(Permissions(read=True, spot_trade=True, withdraw=True)), "robot",
         "at the exchange"),
        (lambda: inspection(Permissions(read=True, spot_trade=True, futures=True)), "robot",
         "KEYBROKER_ALLOW_FUTURES"),
        (lambda: inspection(whitelist=["198.51.100.1"]), "robot",
         "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS"),
        (lambda: inspection(whitelist=[]), "robot", f"restrict it at the exchange to {ROBOT_IP}"),
        (lambda: inspection(Permissions(read=True)), "robot", "allow spot trading"),
        (lambda: inspection(SITE_RIGHTS, whitelist=[SITE_IP]), "site",
         "KEYBROKER_SITE_EXCHANGE_EGRESS_IPS"),
    ],
)  # fmt: skip
def test_every_refusal_says_what_to_change(build, role: str, names: str) -> None:  # type: ignore[no-untyped-def]
    cfg = Cfg(site_egress_ips=["203.0.113.99"])
    errors = [r for r in run(build(), role, cfg) if r.severity == Severity.ERROR]
    assert errors and all(names in r.message for r in errors[-1:]), errors


def test_an_adapter_hint_is_appended_to_its_reason() -> None:
    hint = {ReasonCode.FUTURES_ENABLED: "Deribit's trade scope covers futures"}
    insp = inspection(Permissions(read=True, spot_trade=True, futures=True), hints=hint)
    (reason,) = run(insp)
    assert reason.message.endswith("(Deribit's trade scope covers futures)")


def test_an_unreported_right_a_robot_needs_is_asked_for_not_against() -> None:
    insp = inspection(Permissions(read=True), unverified=frozenset({"spot_trade", "transfer"}))
    (reason,) = run(insp, "robot")
    assert "that it cannot transfer funds and that it can spot-trade" in reason.message
    (site,) = run(inspection(SITE_RIGHTS, unverified=frozenset({"spot_trade"})), "site")
    assert "that it cannot spot-trade" in site.message
