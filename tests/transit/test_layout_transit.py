"""The Transit parts of the layout: policies moved with the mount, names, Pulumi props."""

from __future__ import annotations

from broker.layout import (
    ROBOT_READ_POLICY,
    ROBOT_TRANSIT_POLICY,
    SITE_READ_POLICY,
    SITE_TRANSIT_POLICY,
    TRANSIT_POLICY_NAMES,
    build_layout,
    transit_key_name,
)
from infra.layout_props import layout_from_props, layout_to_props


def test_transit_policies_follow_a_configured_mount() -> None:
    layout = build_layout(transit_mount="signing-x")
    for name in TRANSIT_POLICY_NAMES:
        assert '"signing-x/' in layout.policies[name]
        assert "exchange-signing" not in layout.policies[name]


def test_roles_hold_their_transit_policy() -> None:
    layout = build_layout()
    assert layout.site_token_role.allowed_policies == (SITE_READ_POLICY, SITE_TRANSIT_POLICY)
    robot = [r for r in layout.approles if ROBOT_READ_POLICY in r.token_policies]
    assert robot[0].token_policies == (ROBOT_READ_POLICY, ROBOT_TRANSIT_POLICY)


def test_key_names_carry_the_role_prefix_the_policies_match() -> None:
    assert transit_key_name("site", "alice-1", "binance") == "site-alice-1-binance"
    assert transit_key_name("robot", "alice", "okx").startswith("robot-")


def test_pulumi_props_keep_the_transit_mount() -> None:
    layout = build_layout(transit_mount="signing-x")
    assert layout_from_props(layout_to_props(layout)) == layout
