"""Who may report a verification (docs/key-health.md): only the consumer of the key's role,
with its own Vault token. Everyone else gets 403, audited; bad reports get typed errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import hvac

from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import new_account
from tests.health.conftest import HealthEnv, own_key


def _report(version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "checked_at": datetime.now(UTC).isoformat(),
        "accepted": True,
        "reasons": [],
        **extra,
    }


def _robot_token(health_env: HealthEnv) -> str:
    vault = hvac.Client(url=health_env.broker.settings.vault_addr)
    login = vault.auth.approle.login(health_env.robot_role_id, health_env.robot_secret_id)
    return str(login["auth"]["client_token"])


def _site_token(health_env: HealthEnv) -> str:
    with health_env.broker.http("site_backend") as http:
        return str(http.post("/v1/site-tokens", json={}).json()["token"])


def test_only_the_keys_own_consumer_may_report(
    health_env: HealthEnv, sandbox: SandboxServer
) -> None:
    env = health_env.broker
    account = new_account("refuse")
    for role, key in (("robot", own_key(sandbox)), ("site", own_key(sandbox, spot_trade=False))):
        with env.http("intake") as http:
            put = http.put(
                f"/v1/accounts/{account}/keys/okx/{role}", json={"name": role, **key.credentials()}
            )
            assert put.status_code == 201, put.text
    robot, site = _robot_token(health_env), _site_token(health_env)
    path = "/v1/accounts/{account}/keys/okx/{role}/verifications"

    def post(token: str, role: str, body: Any = None, account_: str = account) -> Any:
        with env.http(token) as http:
            return http.post(path.format(account=account_, role=role), json=body or _report())

    # Each consumer for its own role: accepted.
    assert post(robot, "robot").status_code == 200
    assert post(site, "site").json()["health"]["status"] == "connected"
    # The other role, a non-consumer token (intake, no policy): 403, audited.
    refusals = [
        (robot, "site"),
        (site, "robot"),
        (env.intake_token, "robot"),
        (env.no_policy_token, "site"),
        (env.site_backend_token, "robot"),
    ]
    for token, role in refusals:
        answer = post(token, role)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden", answer.text
    refused = [line for line in env.audit_lines() if line["event"] == "verification.refused"]
    assert len(refused) == len(refusals)
    assert {line["path"].rsplit("/", 2)[-2] for line in refused} == {"site", "robot"}
    assert all(token not in env.audit.text() for token in (robot, site))
    # Unknown token: 401. Another account's key of the right role is accepted: consumer
    # tokens are bound to a role, not an account (docs/key-health.md); a missing key is 404.
    assert post("hvs.unknown", "robot").status_code == 401
    assert post(robot, "robot", account_=new_account("none")).status_code == 404
    # A report about a replaced version: 409; malformed or unknown fields: 400.
    assert post(robot, "robot", _report(version=7)).json()["error"] == "version_mismatch"
    assert post(robot, "robot", _report(secret="x")).status_code == 400
    assert (
        post(robot, "robot", _report(reasons=[{"code": "nope", "severity": "error"}])).status_code
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
    body = _report(accepted=False, reasons=[{"code": "trade_enabled", "severity": "error"}])
    with env.http(_site_token(health_env)) as http:
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
