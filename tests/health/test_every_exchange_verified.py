"""Issue 15: every enabled exchange's robot key is verified by the robot itself, under
both custodies, end to end in process (devvault, the sandbox's real signature checks, the
broker, and `KeyVerifier` over the runtime `RobotKeyClient`).

For each exchange of `DEFAULT_EXCHANGES` (the broker's one list of enabled exchanges) a
fresh sandbox key goes in through the broker; the robot's on-demand verification says
`connected`; the user enables withdrawals through the sandbox's HTTP control; the next
verification says `rights_changed` and stops the key. Further robot keys of every other
signing scheme take the same path. MEXC cannot say (see the test). Each exchange's site
key takes the same path through the site's `SiteKeyClient` (a site token bound to the
key's account): `connected`, then trading enabled -> `rights_changed` (trade).

Deribit's second request (after 13021) signed with the empty secret a `transit` robot
holds before the fix in broker/exchanges/deribit.py: on that code
`test_deribit_forbidden_is_told_apart_by_the_robot[transit-*]` fail (both read
`revoked_at_exchange`); the `kv` cases pass on both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import RobotKeyClient, SiteKeyClient
from broker.config import DEFAULT_EXCHANGES
from broker.layout import layout_from_settings
from broker.verifier import KeyVerifier, Verification
from keybroker_dev.devvault.server import DevVaultServer
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import OTHER_IP, ROBOT_EGRESS_IP
from tests.fixtures.broker import BrokerEnv, build_broker_env, new_account
from tests.fixtures.vault import REAL_VAULT_SKIP, real_vault_from_env
from tests.health.conftest import own_key

CUSTODIES = ("kv", "transit")
# Exchanges that cannot tell a key's own withdrawal right once the account may withdraw.
UNREADABLE_WITHDRAW = frozenset({"mexc"})


class Robot:
    """The broker of one custody, the robot verifying with its own AppRole, and the site
    verifying with site tokens bound to each account."""

    def __init__(
        self,
        env: BrokerEnv,
        verifier: KeyVerifier,
        client: RobotKeyClient,
        site_verifier: KeyVerifier,
    ) -> None:
        self.env = env
        self.verifier = verifier
        self.client = client
        self.site_verifier = site_verifier


@pytest.fixture(scope="module", params=CUSTODIES)
def robot(request: pytest.FixtureRequest, sandbox: SandboxServer) -> Iterator[Robot]:
    """One devvault and broker per custody for the whole module (a broker per case would
    cost a second each)."""
    if real_vault_from_env() is not None:
        pytest.skip(REAL_VAULT_SKIP)
    with DevVaultServer() as vault:
        env = build_broker_env(
            vault.addr,
            vault.root_token,
            sandbox.exchange_urls,
            site_custody=request.param,
            robot_custody=request.param,
            # Deribit's trade scope covers futures (broker/exchanges/deribit.py HINTS), and
            # other exchanges report trading keys as futures-capable too.
            allow_futures=True,
            accept_unverifiable=["mexc"],
            # The site's requests reach the sandbox from the same loopback client address.
            site_exchange_egress_ips=[ROBOT_EGRESS_IP],
        )
        # The robot reaches this Vault from loopback, not from its exchange egress address.
        apply_layout(
            env.root, layout_from_settings(env.settings, robot_login_cidrs=("127.0.0.1/32",))
        )
        creds = issue_approle_credentials(env.root, "keybroker-robot")
        client = RobotKeyClient(env.settings.vault_addr, creds.role_id, creds.secret_id)
        verifier = KeyVerifier(client, env.url, settings=env.settings, egress_ip=ROBOT_EGRESS_IP)
        site = SiteKeyClient(env.url, env.site_backend_token, env.settings.vault_addr)
        site_verifier = KeyVerifier(site, env.url, settings=env.settings, egress_ip=ROBOT_EGRESS_IP)
        try:
            yield Robot(env, verifier, client, site_verifier)
        finally:
            verifier.close()
            site_verifier.close()
            site.close()
            env.running.stop()


def _custody(robot: Robot) -> str:
    return str(robot.env.settings.robot_custody)


def _store(
    robot: Robot, sandbox: SandboxServer, exchange: str, role: str = "robot", **fields: Any
) -> tuple[str, Any]:
    key = own_key(sandbox, exchange, **fields)
    account = new_account(f"every-{exchange}")
    with robot.env.http("intake") as http:
        stored = http.put(
            f"/v1/accounts/{account}/keys/{exchange}/{role}",
            json={"name": "bot", **key.credentials()},
        )
    assert stored.status_code == 201, stored.text
    assert stored.json()["health"]["status"] == "connected"
    return account, key


def _sandbox_update(sandbox: SandboxServer, exchange: str, api_key: str, **changes: Any) -> None:
    """The user changes the key at the exchange, through the sandbox's HTTP control."""
    answer = requests.post(
        f"{sandbox.base_url}/_sandbox/key-update",
        json={"exchange": exchange, "api_key": api_key, "changes": changes},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _assert_status(seen: Verification, status: str, right: str | None = None) -> None:
    """The robot's own verdict and the broker's answer agree on `status` (and `right`
    among the rights it names; exchanges that tie transfers to withdrawals name both)."""
    assert seen.health.status.value == status, [r.code for r in seen.result.reasons]
    assert seen.broker is not None, "the broker took the report"
    assert seen.broker["health"]["status"] == status
    if right is not None:
        assert right in seen.health.rights and right in seen.broker["health"]["rights"]


# Keys that ccxt signs otherwise than with a plain HMAC of the secret (docs/custody.md
# "Schemes"): each reaches Transit through another primitive (broker/signing.py).
# name -> (exchange, sandbox key fields, the scheme the Transit record must name).
OTHER_SCHEMES: dict[str, tuple[str, dict[str, Any], str]] = {
    "kucoin-v2": ("kucoin", {"key_version": 2}, "hmac"),  # passphrase HMAC'd too
    "binance-rsa": ("binance", {"key_type": "rsa"}, "rsa-pem"),
    "binance-ed25519": ("binance", {"key_type": "ed25519"}, "ed25519-pem"),
    "bybit-rsa": ("bybit", {"key_type": "rsa"}, "rsa-pem"),
    "coinbase-cdp-es256": ("coinbase", {"key_type": "cdp"}, "cdp-es256"),
    "coinbase-cdp-eddsa": ("coinbase", {"key_type": "cdp", "cdp_alg": "EdDSA"}, "cdp-ed25519"),
}
CASES = [pytest.param(exchange, {}, None, id=exchange) for exchange in DEFAULT_EXCHANGES] + [
    pytest.param(exchange, fields, scheme, id=name)
    for name, (exchange, fields, scheme) in OTHER_SCHEMES.items()
]


@pytest.mark.parametrize(("exchange", "fields", "scheme"), CASES)
def test_robot_verifies_its_key_then_sees_withdrawals_enabled(
    robot: Robot, sandbox: SandboxServer, exchange: str, fields: dict[str, Any], scheme: str | None
) -> None:
    account, key = _store(robot, sandbox, exchange, **fields)
    loaded = robot.client.get_key(account, exchange)
    assert loaded.custody == _custody(robot)
    if loaded.transit:
        assert not loaded.secret, "under transit custody the robot holds no secret"
        assert scheme is None or loaded.transit["scheme"] == scheme

    first = robot.verifier.verify(account, exchange)
    _assert_status(first, "connected")
    assert not first.stop

    _sandbox_update(sandbox, exchange, key.api_key, withdraw=True)
    changed = robot.verifier.verify(account, exchange)
    if exchange in UNREADABLE_WITHDRAW:
        # MEXC's `canWithdraw: true` may describe the account, not the key
        # (broker/exchanges/mexc.py): the right becomes unknown, which the operator's
        # ACCEPT_UNVERIFIABLE=mexc accepts with a warning, at intake and here alike.
        _assert_status(changed, "connected")
        assert "withdraw" not in _unverifiable(first) and "withdraw" in _unverifiable(changed)
        assert not changed.stop
        return
    _assert_status(changed, "rights_changed", "withdraw")
    assert changed.stop and robot.verifier.stopped(loaded)


@pytest.mark.parametrize("exchange", DEFAULT_EXCHANGES)
def test_site_verifies_its_key_then_sees_trading_enabled(
    robot: Robot, sandbox: SandboxServer, exchange: str
) -> None:
    """The site's verification of a read-only key, signed with the site token bound to
    the key's account (so the broker takes its report), then trading enabled at the
    exchange: `rights_changed` (trade), which stops the site's use of the key."""
    account, key = _store(robot, sandbox, exchange, role="site", spot_trade=False)
    first = robot.site_verifier.verify(account, exchange)
    _assert_status(first, "connected")
    _sandbox_update(sandbox, exchange, key.api_key, spot_trade=True)
    changed = robot.site_verifier.verify(account, exchange)
    _assert_status(changed, "rights_changed", "trade")
    assert changed.stop


def _unverifiable(seen: Verification) -> str:
    """The text of the verification's `unverifiable` warning (it names the rights)."""
    return " ".join(r.message for r in seen.result.reasons if r.code == "unverifiable")


# Deribit answers 13021 "forbidden" both to a key without `account:read` and to a caller
# outside the whitelist; the adapter then tells them apart with a signed `public/auth`
# (broker/exchanges/deribit.py). That second request must be signed by the robot's own
# ccxt object too: under `transit` custody the robot holds no secret.
@pytest.mark.parametrize(
    ("changes", "status", "right"),
    [
        ({"ip_whitelist": [OTHER_IP]}, "ip_not_allowed", None),
        ({"read": False}, "rights_changed", "no_read"),
    ],
    ids=["whitelist_without_robot", "account_read_removed"],
)
def test_deribit_forbidden_is_told_apart_by_the_robot(
    robot: Robot,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    status: str,
    right: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    account, key = _store(robot, sandbox, "deribit")
    _assert_status(robot.verifier.verify(account, "deribit"), "connected")
    _sandbox_update(sandbox, "deribit", key.api_key, **changes)
    seen = robot.verifier.verify(account, "deribit")
    _assert_status(seen, status, right)
    # Canaries: the signed fallback leaks the secret into no log, reason or answer.
    texts = [r.getMessage() for r in caplog.records] + [r.message for r in seen.result.reasons]
    for text in [*texts, repr(seen), str(seen.broker)]:
        assert key.secret not in text
