"""Key health fixtures: a broker on a fresh devvault with `transit` custody, the robot's
AppRole, a signed-webhook receiver, and sandbox keys of the test's own."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import hvac
import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.layout import layout_from_settings
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP, SandboxKey, new_key
from tests.fixtures.broker import BrokerEnv, build_broker_env

WEBHOOK_SECRET = "whsec-test-4b1d"
T = TypeVar("T")


@dataclass
class Receiver:
    """Records webhook deliveries; answers 500 to the first `fail_first` of them, or
    what `decide(headers, path)` says when set."""

    fail_first: int = 1
    decide: Callable[[dict[str, str], str], int] | None = None
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    url: str = ""

    def bodies(self) -> list[dict[str, Any]]:
        return [
            json.loads(body)
            for (_, body), status in zip(self.received, self.answered, strict=False)
            if status == 200
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    record = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                if record.decide is not None:
                    status = record.decide(dict(self.headers), self.path)
                else:
                    status = 500 if len(record.answered) < record.fail_first else 200
                record.received.append((dict(self.headers), body))
                record.answered.append(status)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield record
    server.shutdown()


@dataclass
class HealthEnv:
    broker: BrokerEnv
    robot_role_id: str
    robot_secret_id: str = field(repr=False)


@pytest.fixture
def health_env(devvault: Any, sandbox: SandboxServer, receiver: Receiver) -> Iterator[HealthEnv]:
    env = build_broker_env(
        devvault.addr,
        devvault.root_token,
        sandbox.exchange_urls,
        site_custody="transit",
        robot_custody="transit",
        site_exchange_egress_ips=[ROBOT_EGRESS_IP],
        verify_interval=60,
        webhook_urls=[receiver.url],
        webhook_secret=WEBHOOK_SECRET,
        webhook_retry_delays=[0.05, 0.1, 0.2],
    )
    # The robot reaches this Vault from loopback, not from its exchange egress address.
    apply_layout(env.root, layout_from_settings(env.settings, robot_login_cidrs=("127.0.0.1/32",)))
    robot = issue_approle_credentials(env.root, "keybroker-robot")
    yield HealthEnv(env, robot.role_id, robot.secret_id)
    env.running.stop()


def robot_read_token(root: Any) -> str:
    """A token with the robot's read policy: it stands in for the robot's AppRole login
    (bound to the robot's Vault CIDR) as the author of verification reports."""
    created = root.auth.token.create(policies=["keybroker-robot-read"], ttl="10m")
    return str(created["auth"]["client_token"])


def report_body(version: int = 1, **extra: Any) -> dict[str, Any]:
    """A verification report body (broker/health/report.py): accepted, no reasons."""
    return {
        "version": version,
        "checked_at": datetime.now(UTC).isoformat(),
        "accepted": True,
        "reasons": [],
        **extra,
    }


def robot_login_token(health_env: HealthEnv, secret_id: str | None = None) -> str:
    """The robot's own token: an AppRole login (with `secret_id` when given)."""
    vault = hvac.Client(url=health_env.broker.settings.vault_addr)
    login = vault.auth.approle.login(
        health_env.robot_role_id, secret_id or health_env.robot_secret_id
    )
    return str(login["auth"]["client_token"])


def site_token(health_env: HealthEnv, account: str | None) -> str:
    """A site token from the broker, bound to `account` (None: unbound)."""
    body = {"account": account} if account else {}
    with health_env.broker.http("site_backend") as http:
        answer = http.post("/v1/site-tokens", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["account"] == account
    return str(answer.json()["token"])


def store_keys(health_env: HealthEnv, sandbox: SandboxServer, account: str) -> None:
    """A robot key and a read-only site key of okx for `account`, through the broker."""
    for role, key in (("robot", own_key(sandbox)), ("site", own_key(sandbox, spot_trade=False))):
        with health_env.broker.http("intake") as http:
            put = http.put(
                f"/v1/accounts/{account}/keys/okx/{role}", json={"name": role, **key.credentials()}
            )
            assert put.status_code == 201, put.text


def refusals(health_env: HealthEnv) -> list[dict[str, Any]]:
    """The `verification.refused` audit lines so far."""
    return [
        line for line in health_env.broker.audit_lines() if line["event"] == "verification.refused"
    ]


class Recording(requests.Session):
    """The verifier's HTTP session, keeping every request body it sends to the broker."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        data = kwargs.get("data")
        self.bodies.append(data if isinstance(data, str) else repr(kwargs.get("json")))
        return super().request(method, url, *args, **kwargs)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """`probe()`'s first truthy answer, polled every 50 ms; AssertionError naming `what`
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def own_key(sandbox: SandboxServer, exchange: str = "okx", **rights: Any) -> SandboxKey:
    """A sandbox key only this test changes (the sandbox is shared by the session)."""
    spec: dict[str, Any] = {"read": True, "spot_trade": True, "ip_whitelist": (ROBOT_EGRESS_IP,)}
    key = new_key(exchange, f"health-{uuid.uuid4().hex[:10]}", **(spec | rights))
    sandbox.add_key(key)
    return key
