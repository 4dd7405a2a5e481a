"""MEXC (issue 11): rights read from /account, spot trading probed with a test order that
places nothing, the rest unverifiable: refused by default, accepted with a warning where
the operator opts in (KEYBROKER_ACCEPT_UNVERIFIABLE=mexc).

On the code before issue 11 every MEXC key was refused as `unverifiable` with one request
and no rights read: `test_opted_in_good_keys_are_accepted_with_a_warning` and
`test_spot_trading_is_probed_with_a_test_order` fail there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pytest

from broker.config import Settings
from broker.exchanges.base import Credentials
from broker.exchanges.checker import KeyChecker
from broker.exchanges.mexc import PROBE_ORDER, MexcAdapter, parse
from broker.reasons import CheckResult
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP


def check(sandbox: SandboxServer, label: str, role: str, **settings: Any) -> CheckResult:
    key = sandbox.key("mexc", label)
    config = Settings(
        exchange_urls=sandbox.exchange_urls,
        robot_exchange_egress_ips=[ROBOT_EGRESS_IP],
        **settings,
    )

    async def run() -> CheckResult:
        async with KeyChecker(config) as checker:
            return await checker.check("mexc", role, Credentials(key.api_key, key.secret))

    return asyncio.run(run())


def by_code(result: CheckResult) -> dict[str, str]:
    return {r.code.value: r.severity.value for r in result.reasons}


@pytest.mark.parametrize(("label", "role"), [("read_only", "site"), ("trade_whitelisted", "robot")])
def test_good_keys_are_refused_by_default_and_say_how_to_opt_in(
    fresh_sandbox: SandboxServer, label: str, role: str
) -> None:
    result = check(fresh_sandbox, label, role)
    assert not result.accepted
    assert by_code(result)["unverifiable"] == "error"
    message = next(r.message for r in result.reasons if r.code == "unverifiable")
    assert "KEYBROKER_ACCEPT_UNVERIFIABLE=mexc" in message
    assert "transfer" in message and "futures" in message


@pytest.mark.parametrize(("label", "role"), [("read_only", "site"), ("trade_whitelisted", "robot")])
def test_opted_in_good_keys_are_accepted_with_a_warning(
    fresh_sandbox: SandboxServer, label: str, role: str
) -> None:
    result = check(fresh_sandbox, label, role, accept_unverifiable="mexc")
    assert result.accepted, result.reasons
    assert by_code(result) == {"unverifiable": "warning", "ip_whitelist_unverifiable": "warning"}
    assert result.permissions.read and result.permissions.spot_trade is (role == "robot")
    key = fresh_sandbox.key("mexc", label)
    assert fresh_sandbox.request_count(key.api_key) == MexcAdapter.requests_per_check == 2


def test_spot_trading_is_probed_with_a_test_order(fresh_sandbox: SandboxServer) -> None:
    # What MEXC does report still refuses, opt-in or not.
    as_robot = check(fresh_sandbox, "read_only", "robot", accept_unverifiable="mexc")
    assert by_code(as_robot)["trade_disabled"] == "error"
    as_site = check(fresh_sandbox, "trade_whitelisted", "site", accept_unverifiable="mexc")
    assert by_code(as_site)["trade_enabled"] == "error"


def test_an_opted_in_withdrawing_account_is_named_in_the_warning(
    fresh_sandbox: SandboxServer,
) -> None:
    result = check(fresh_sandbox, "withdraw_enabled", "robot", accept_unverifiable="mexc")
    warning = next(r.message for r in result.reasons if r.code == "unverifiable")
    assert "withdraw" in warning and "make sure at the exchange" in warning


def test_futures_allowed_leaves_only_transfer_unverified(fresh_sandbox: SandboxServer) -> None:
    result = check(fresh_sandbox, "trade_whitelisted", "robot", allow_futures="mexc")
    message = next(r.message for r in result.reasons if r.code == "unverifiable")
    assert "transfer" in message and "futures" not in message


def test_account_fields_map_to_rights() -> None:
    no_withdraw = parse({"canTrade": True, "canWithdraw": False, "permissions": ["SPOT"]}, True)
    assert no_withdraw.permissions.spot_trade and not no_withdraw.permissions.withdraw
    assert "withdraw" not in no_withdraw.unverified
    # true may describe the account, not the key: not proof of anything
    maybe = parse({"canTrade": True, "canWithdraw": True}, False)
    assert "withdraw" in maybe.unverified and not maybe.permissions.spot_trade
    assert parse({}, None).unverified >= {"spot_trade", "transfer", "futures", "margin"}


class _Probe:
    """Stands in for ccxt's mexc: the account answer, then what the test order raises."""

    def __init__(self, order_outcome: BaseException | dict[str, Any]) -> None:
        self.outcome = order_outcome
        self.orders: list[dict[str, Any]] = []

    async def spot_private_get_account(self) -> dict[str, Any]:
        return {"canTrade": True, "canWithdraw": False, "permissions": ["SPOT"]}

    async def spot_private_post_order_test(self, params: dict[str, Any]) -> dict[str, Any]:
        self.orders.append(params)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "spot_trade", "unverified"),
    [
        ({}, True, False),
        (ccxt.AuthenticationError('mexc {"code":700007,"msg":"No permission"}'), False, False),
        (ccxt.InsufficientFunds('mexc {"code":30004,"msg":"Insufficient position"}'), False, True),
        (ccxt.InvalidOrder('mexc {"code":30002,"msg":"minimum volume"}'), False, True),
    ],
)
def test_test_order_outcomes(outcome: Any, spot_trade: bool, unverified: bool) -> None:
    probe = _Probe(outcome)
    creds = Credentials("k" * 16, "s" * 32)
    inspection = asyncio.run(MexcAdapter().inspect(probe, creds))
    assert inspection.permissions.spot_trade is spot_trade
    assert ("spot_trade" in inspection.unverified) is unverified
    assert probe.orders == [PROBE_ORDER]


def test_other_probe_failures_are_not_a_verdict() -> None:
    probe = _Probe(ccxt.AuthenticationError('mexc {"code":700002,"msg":"bad signature"}'))
    with pytest.raises(ccxt.AuthenticationError):
        asyncio.run(MexcAdapter().inspect(probe, Credentials("k" * 16, "s" * 32)))
