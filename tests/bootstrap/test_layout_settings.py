"""layout_from_settings: which KEYBROKER_* settings shape the layout (docs/contracts.md §2, §7)."""

from __future__ import annotations

from broker.config import load_settings
from broker.layout import layout_from_settings


def test_settings_map_onto_the_layout() -> None:
    settings = load_settings(
        kv_mount="keys",
        site_egress_ips=["10.1.0.0/24"],
        robot_egress_ips=["203.0.113.10"],
        site_token_ttl="2m",
        site_token_max_ttl="10m",
        site_token_role="site-role",
    )
    layout = layout_from_settings(settings)
    assert layout.mount == "keys"
    role = layout.site_token_role
    assert (role.name, role.default_ttl, role.explicit_max_ttl) == ("site-role", 120, 600)
    assert role.bound_cidrs == ("10.1.0.0/24",)
    robot = {r.name: r for r in layout.approles}["keybroker-robot"]
    assert robot.token_bound_cidrs == robot.secret_id_bound_cidrs == ("203.0.113.10",)
    assert all('"keys/' in text for text in layout.policies.values() if "data/" in text)


def test_robot_login_cidrs_override_the_exchange_egress() -> None:
    settings = load_settings(robot_egress_ips=["203.0.113.10"])
    layout = layout_from_settings(settings, robot_login_cidrs=("127.0.0.1/32",))
    robot = {r.name: r for r in layout.approles}["keybroker-robot"]
    assert robot.token_bound_cidrs == ("127.0.0.1/32",)
