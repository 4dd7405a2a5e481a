"""Edges of the HTTP layer: unexpected errors, metrics content, readiness."""

from __future__ import annotations

import logging

from broker.api.server import start_in_thread
from broker.reasons import CheckResult
from tests.broker.helpers import assert_envelope, key_body
from tests.fixtures.broker import AuditCapture, BrokerEnv, new_account

SECRET_IN_EXCEPTION = "CANARY-IN-EXCEPTION-91c2"


class ExplodingChecker:
    """Stands in for broker.exchanges.KeyChecker (docs/contracts.md §3 CheckResult producer)
    with the one behaviour the contract forbids it: raising, with a secret in the text."""

    async def check(self, exchange: str, role: str, credentials: object) -> CheckResult:
        raise RuntimeError(f"boom {SECRET_IN_EXCEPTION}")


def test_unexpected_error_is_a_500_envelope_logged_by_type_only(
    broker_env: BrokerEnv, sandbox, caplog, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    with start_in_thread(
        broker_env.settings, checker=ExplodingChecker(), audit_stream=AuditCapture()
    ) as broker:
        env = BrokerEnv(
            running=broker,
            settings=broker_env.settings,
            root=broker_env.root,
            intake_token=broker_env.intake_token,
            site_backend_token=broker_env.site_backend_token,
            both_token=broker_env.both_token,
            no_policy_token=broker_env.no_policy_token,
            audit=AuditCapture(),
        )
        account = new_account()
        with env.http() as http:
            response = http.put(
                f"/v1/accounts/{account}/keys/binance/site",
                json=key_body(sandbox.key("binance", "read_only")),
            )
            assert http.get("/healthz").status_code == 200  # still serving
    assert_envelope(response, 500, "internal_error")
    assert SECRET_IN_EXCEPTION not in response.text
    assert "RuntimeError" in caplog.text
    assert SECRET_IN_EXCEPTION not in caplog.text + "".join(capfd.readouterr())
    assert broker_env.account_paths(account) == []


def test_metrics_count_outcomes_latencies_and_tokens(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    with broker_env.http() as http:
        http.put(
            f"/v1/accounts/{account}/keys/kucoin/site",
            json=key_body(sandbox.key("kucoin", "read_only")),
        )
        http.put(
            f"/v1/accounts/{account}/keys/kucoin/robot",
            json=key_body(sandbox.key("kucoin", "withdraw_enabled")),
        )
    with broker_env.http("site_backend") as http:
        http.post("/v1/site-tokens", json={"wrap_ttl": "30s"})
    with broker_env.http() as http:
        text = http.get("/metrics").text
    assert 'keybroker_intake_total{exchange="kucoin",outcome="accepted",role="site"}' in text
    assert 'keybroker_intake_total{exchange="kucoin",outcome="rejected",role="robot"}' in text
    assert 'keybroker_check_seconds_count{exchange="kucoin"}' in text
    assert 'keybroker_vault_seconds_count{operation="write_data"}' in text
    assert 'keybroker_site_tokens_total{wrapped="true"}' in text
    assert account not in text  # accounts are never metric labels
