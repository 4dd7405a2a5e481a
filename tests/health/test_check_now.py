""" "Check now" through the broker (docs/key-health.md "Check now"): the intake asks for a
verification, the key's consumer sees the request with its own token (the report rules:
role, then account), and the next report on that version fulfils it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.client import RobotKeyClient, SiteKeyClient
from broker.health.demand import PendingRequests
from broker.verifier import KeyVerifier
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP
from tests.fixtures.broker import new_account
from tests.health.conftest import (
    HealthEnv,
    Recording,
    own_key,
    refusals,
    report_body,
    robot_login_token,
    site_token,
    store_keys,
    wait_for,
)


class Sent(Recording):
    """Also keeps the URL of every request (polls carry their query there)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        answer = super().request(method, url, *args, **kwargs)
        self.urls.append(answer.url)
        return answer


def _ask(health_env: HealthEnv, account: str, role: str, token: str = "intake") -> Any:
    with health_env.broker.http(token) as http:
        return http.post(f"/v1/accounts/{account}/keys/okx/{role}/verification-requests")


def _poll(health_env: HealthEnv, token: str, role: str, account: str | None = None) -> Any:
    params = {"role": role, **({"account": account} if account else {})}
    with health_env.broker.http(token) as http:
        return http.get("/v1/verification-requests", params=params)


def _keys(answer: Any) -> list[tuple[str, str, str, int]]:
    assert answer.status_code == 200, answer.text
    return [
        (r["account"], r["exchange"], r["role"], r["version"]) for r in answer.json()["requests"]
    ]


def test_a_request_reaches_its_consumer_and_the_report_fulfils_it(
    health_env: HealthEnv, sandbox: SandboxServer
) -> None:
    env = health_env.broker
    alice, bob = new_account("alice"), new_account("bob")
    for account in (alice, bob):
        store_keys(health_env, sandbox, account)
    robot = robot_login_token(health_env)
    site_alice, site_bob = site_token(health_env, alice), site_token(health_env, bob)

    asked = _ask(health_env, alice, "robot")
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert set(body) == {"account", "exchange", "role", "version", "requested_at"}
    assert (body["account"], body["role"], body["version"]) == (alice, "robot", 1)
    assert _ask(health_env, alice, "site").status_code == 202
    assert _ask(health_env, bob, "site").status_code == 202
    audit = [line for line in env.audit_lines() if line["event"] == "verification.requested"]
    assert [(line["account"], line["role"]) for line in audit] == [
        (alice, "robot"),
        (alice, "site"),
        (bob, "site"),
    ]

    # The key view says it waits; each consumer sees its own role's requests, a bound site
    # token only its account's.
    with env.http("intake") as http:
        view = http.get(f"/v1/accounts/{alice}/keys/okx/robot").json()
    assert view["health"]["requested_at"] == body["requested_at"]
    assert (alice, "okx", "robot", 1) in _keys(_poll(health_env, robot, "robot"))
    assert _keys(_poll(health_env, site_alice, "site")) == [(alice, "okx", "site", 1)]
    assert _keys(_poll(health_env, site_bob, "site")) == [(bob, "okx", "site", 1)]
    assert _keys(_poll(health_env, robot, "robot", bob)) == []
    # The site backend serves every account: it polls the site's requests of all of them,
    # and has no say over the robot's.
    backend = env.site_backend_token
    assert {(alice, "okx", "site", 1), (bob, "okx", "site", 1)} <= set(
        _keys(_poll(health_env, backend, "site"))
    )
    assert _keys(_poll(health_env, backend, "site", bob)) == [(bob, "okx", "site", 1)]
    assert _poll(health_env, backend, "robot").status_code == 403

    # A report checked before the request leaves it pending; one checked after fulfils it.
    early = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with env.http(robot) as http:
        path = f"/v1/accounts/{alice}/keys/okx/robot/verifications"
        assert http.post(path, json=report_body(checked_at=early)).status_code == 200
        assert (alice, "okx", "robot", 1) in _keys(_poll(health_env, robot, "robot"))
        assert http.post(path, json=report_body(trigger="demand")).status_code == 200
    assert (alice, "okx", "robot", 1) not in _keys(_poll(health_env, robot, "robot"))
    with env.http("intake") as http:
        view = http.get(f"/v1/accounts/{alice}/keys/okx/robot").json()
        listed = http.get(f"/v1/accounts/{alice}/keys").json()["keys"]
    assert view["health"]["requested_at"] is None
    assert {k["role"]: k["health"]["requested_at"] is None for k in listed} == {
        "robot": True,
        "site": False,
    }
    # Deleting the key drops its request.
    with env.http("intake") as http:
        assert http.delete(f"/v1/accounts/{bob}/keys/okx/site").status_code == 204
    assert _keys(_poll(health_env, site_bob, "site")) == []


def test_requests_refused_like_reports(health_env: HealthEnv, sandbox: SandboxServer) -> None:
    """404 without a key; the poll needs the role's consumer token, bound to the account
    where reports must be (site), and a bound token sees no other account: 403, audited."""
    env = health_env.broker
    alice, bob = new_account("alice"), new_account("bob")
    store_keys(health_env, sandbox, alice)
    missing = _ask(health_env, new_account("none"), "robot")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert _ask(health_env, alice, "robot", token="site_backend").status_code == 403
    assert _ask(health_env, alice, "trader").status_code == 400

    robot = robot_login_token(health_env)
    site_alice = site_token(health_env, alice)
    site_unbound = site_token(health_env, None)
    before = len(refusals(health_env))
    cases = [
        (robot, "site", None),
        (site_alice, "robot", None),
        (env.intake_token, "robot", None),
        (site_unbound, "site", None),
        (site_alice, "site", bob),
    ]
    for token, role, account in cases:
        answer = _poll(health_env, token, role, account)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden", answer.text
    reasons = [line["reason"] for line in refusals(health_env)[before:]]
    assert reasons == [
        "a robot consumer's token cannot poll for requests on site keys",
        "a site consumer's token cannot poll for requests on robot keys",
        "not a consumer's token cannot poll for requests on robot keys",
        "site token not bound to an account",
        "site token bound to another account",
    ]
    assert _poll(health_env, robot, "everyone").status_code == 400
    assert _poll(health_env, "hvs.unknown", "robot").status_code == 401
    assert all(t not in env.audit.text() for t in (robot, site_alice, site_unbound))


def test_pending_requests_expire_and_follow_the_version() -> None:
    store = PendingRequests(ttl=timedelta(minutes=1))
    now = datetime(2026, 12, 5, 0, 0, 0, 700_000, tzinfo=UTC)
    key = ("alice", "okx", "robot")
    asked = store.add(key, 2, now)
    assert asked.requested_at == now.replace(microsecond=0)  # reports carry whole seconds
    assert store.get(key, 1, now) is None  # another version
    store.fulfil(key, 1, now)  # a report on another version fulfils nothing
    assert store.pending("robot", None, now) == [asked]
    assert store.pending("site", None, now) == []
    assert store.pending("robot", "bob", now) == []
    store.fulfil(key, 2, now.replace(microsecond=0))  # checked in the same second: answered
    assert store.get(key, 2, now) is None
    store.add(key, 2, now)
    later = now + timedelta(minutes=2)
    assert store.get(key, 2, later) is None and store.pending("robot", None, later) == []
    assert len(store) == 0


def test_the_verifiers_poll_answers_requests_at_once(
    health_env: HealthEnv, sandbox: SandboxServer
) -> None:
    """Both consumers on a one-hour schedule, so only a request can cause a second check:
    the robot (one AppRole token, one poll) and the site (a token per account, a poll per
    account) each verify the requested key with trigger `demand`, once per request, and
    nothing secret travels in the poll or the report."""
    env = health_env.broker
    alice, bob = new_account("alice"), new_account("bob")
    secrets: list[str] = []
    for account in (alice, bob):
        for role, key in (
            ("robot", own_key(sandbox)),
            ("site", own_key(sandbox, spot_trade=False)),
        ):
            secrets += [v for v in key.credentials().values() if v]
            with env.http("intake") as http:
                put = http.put(
                    f"/v1/accounts/{account}/keys/okx/{role}",
                    json={"name": role, **key.credentials()},
                )
            assert put.status_code == 201, put.text
    robot_session, site_session = Sent(), Sent()
    robot_client = RobotKeyClient(
        env.settings.vault_addr, health_env.robot_role_id, health_env.robot_secret_id
    )
    site_client = SiteKeyClient(env.url, env.site_backend_token, env.settings.vault_addr)
    robot = KeyVerifier(
        robot_client,
        env.url,
        settings=env.settings,
        egress_ip=ROBOT_EGRESS_IP,
        interval=3600,
        poll_requests=0.1,
        session=robot_session,
    )
    site = KeyVerifier(
        site_client,
        env.url,
        settings=env.settings,
        egress_ip=ROBOT_EGRESS_IP,
        interval=3600,
        poll_requests=0.1,
        session=site_session,
    )
    with robot, site:
        for account in (alice, bob):
            robot_client.get_key(account, "okx")
            site_client.get_key(account, "okx")

        def triggers(session: Recording) -> list[str]:
            return [json.loads(b)["trigger"] for b in session.bodies if b.startswith("{")]

        wait_for("the load checks", lambda: triggers(robot_session) == ["load", "load"])
        wait_for("the site's load checks", lambda: triggers(site_session) == ["load", "load"])
        assert _ask(health_env, bob, "robot").status_code == 202
        assert _ask(health_env, alice, "site").status_code == 202
        wait_for("robot's check", lambda: triggers(robot_session)[2:] == ["demand"], 5)
        wait_for("site's check", lambda: triggers(site_session)[2:] == ["demand"], 5)
        with env.http("intake") as http:
            view = http.get(f"/v1/accounts/{bob}/keys/okx/robot").json()
        assert view["health"]["requested_at"] is None and view["health"]["verified_at"]
        time.sleep(0.5)  # several more polls: a request is answered once
        assert len(triggers(robot_session)) == 3 and len(triggers(site_session)) == 3
        # The site polls once for every account, with the site backend's token.
        polls = [u for u in site_session.urls if "verification-requests" in u]
        assert polls and not [u for u in polls if "account=" in u]
    sent = robot_session.bodies + site_session.bodies + robot_session.urls + site_session.urls
    assert sent and not [s for s in secrets if any(s in text for text in sent)]
