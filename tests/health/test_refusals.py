"""Who may report a verification (docs/key-health.md "Who may report"): only the consumer of
the key's role, with its own Vault token, bound to the key's account where the role (or the
token) says so. Everyone else gets 403, audited; bad reports get typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.bootstrap import issue_approle_credentials
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import new_account
from tests.health.conftest import (
    HealthEnv,
    own_key,
    refusals,
    report_body,
    robot_login_token,
    site_token,
    store_keys,
)


def _poster(health_env: HealthEnv) -> Callable[..., Any]:
    path = "/v1/accounts/{account}/keys/okx/{role}/verifications"

    def post(token: str, role: str, account: str, body: Any = None) -> Any:
        with health_env.broker.http(token) as http:
            return http.post(path.format(account=account, role=role), json=body or report_body())

    return post


def test_only_the_keys_own_consumer_may_report(
    health_env: HealthEnv, sandbox: SandboxServer
) -> None:
    env = health_env.broker
    account = new_account("refuse")
    store_keys(health_env, sandbox, account)
    robot, site = robot_login_token(health_env), site_token(health_env, account)
    posted = _poster(health_env)

    def post(token: str, role: str, body: Any = None, account_: str = account) -> Any:
        return posted(token, role, account_, body)

    # Each consumer for its own role: accepted.
    assert post(robot, "robot").status_code == 200
    assert post(site, "site").json()["health"]["status"] == "connected"
    # The other role, a non-consumer token (intake, no policy): 403, audited.
    attempts = [
        (robot, "site"),
        (site, "robot"),
        (env.intake_token, "robot"),
        (env.no_policy_token, "site"),
        (env.site_backend_token, "robot"),
    ]
    for token, role in attempts:
        answer = post(token, role)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden", answer.text
    refused = refusals(health_env)
    assert len(refused) == len(attempts)
    assert {line["path"].rsplit("/", 2)[-2] for line in refused} == {"site", "robot"}
    assert all(token not in env.audit.text() for token in (robot, site))
    # Unknown token: 401. The robot's AppRole spans accounts: a missing key is 404.
    assert post("hvs.unknown", "robot").status_code == 401
    assert post(robot, "robot", account_=new_account("none")).status_code == 404
    # A report about a replaced version: 409; malformed or unknown fields: 400.
    assert post(robot, "robot", report_body(version=7)).json()["error"] == "version_mismatch"
    assert post(robot, "robot", report_body(secret="x")).status_code == 400
    assert (
        post(
            robot, "robot", report_body(reasons=[{"code": "nope", "severity": "error"}])
        ).status_code
        == 400
    )
    with env.http("intake") as http:
        bad = http.get("/v1/keys", params={"status": "fine"})
    assert bad.status_code == 400 and "connected" in bad.json()["message"]


def test_a_site_key_that_can_now_trade_stops(health_env: HealthEnv, sandbox: SandboxServer) -> None:
    """A report (here posted directly with the site's token) of trade_enabled on a site key:
    rights_changed (trade), stop=true under the default stop list; kept in metadata."""
    env = health_env.broker
    account = new_account("site")
    key = own_key(sandbox, spot_trade=False)
    with env.http("intake") as http:
        assert (
            http.put(
                f"/v1/accounts/{account}/keys/okx/site", json={"name": "s", **key.credentials()}
            ).status_code
            == 201
        )
    body = report_body(accepted=False, reasons=[{"code": "trade_enabled", "severity": "error"}])
    with env.http(site_token(health_env, account)) as http:
        answer = http.post(f"/v1/accounts/{account}/keys/okx/site/verifications", json=body)
    health = answer.json()["health"]
    assert (health["status"], health["rights"], health["stop"]) == (
        "rights_changed",
        ["trade"],
        True,
    )
    custom = env.metadata("site", account, "okx")["custom_metadata"]  # type: ignore[index]
    assert custom["health.status"] == "rights_changed" and custom["health.detail"] == "trade"
    # The intake's facts of the version are still there (the health write kept them).
    assert custom["v1.name"] == "s"


def test_reports_are_bound_to_the_tokens_account(
    health_env: HealthEnv, sandbox: SandboxServer
) -> None:
    """A site token minted for account A reports on A only; a site token minted without
    an account reports on none; the robot's AppRole token spans accounts unless its
    secret ID names one. Each refusal is 403 `forbidden` and a `verification.refused`
    audit line. (On the code before account binding, the site token of A was accepted
    for B's key, and a robot token with an account in its metadata too.)"""
    env = health_env.broker
    alice, bob = new_account("alice"), new_account("bob")
    for account in (alice, bob):
        store_keys(health_env, sandbox, account)
    post = _poster(health_env)
    site_alice = site_token(health_env, alice)
    site_unbound = site_token(health_env, None)
    robot_any = robot_login_token(health_env)
    bound = issue_approle_credentials(env.root, "keybroker-robot", account=alice)
    robot_alice = robot_login_token(health_env, bound.secret_id)

    assert post(site_alice, "site", alice).status_code == 200
    assert post(robot_any, "robot", alice).status_code == 200
    assert post(robot_any, "robot", bob).status_code == 200
    assert post(robot_alice, "robot", alice).status_code == 200
    cases = [
        (site_alice, "site", bob, "bound to another account"),
        (site_unbound, "site", alice, "POST /v1/site-tokens with an account"),
        (robot_alice, "robot", bob, "bound to another account"),
    ]
    before = len(refusals(health_env))
    for token, role, account, says in cases:
        answer = post(token, role, account)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden" and says in answer.json()["message"]
    refused = refusals(health_env)[before:]
    assert [line["reason"] for line in refused] == [
        "site token bound to another account",
        "site token not bound to an account",
        "robot token bound to another account",
    ]
    assert [line["path"].split("/")[3] for line in refused] == [bob, alice, bob]
    # Nothing was recorded for the refused reports: bob's site key is still unverified.
    with env.http("intake") as http:
        view = http.get(f"/v1/accounts/{bob}/keys/okx/site").json()
    assert view["health"]["verified_at"] is None

    # Operators may require bound robot tokens too (KEYBROKER_ACCOUNT_BOUND_REPORTS).
    env.settings.account_bound_reports = ["robot", "site"]
    try:
        answer = post(robot_any, "robot", alice)
        assert answer.status_code == 403 and "secret ID" in answer.json()["message"]
        assert post(robot_alice, "robot", alice).status_code == 200
    finally:
        env.settings.account_bound_reports = ["site"]
