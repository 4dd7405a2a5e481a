"""Key health fixtures: a broker on a fresh devvault with `transit` custody, the robot's
AppRole, a signed-webhook receiver, and sandbox keys of the test's own."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.layout import layout_from_settings
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP, SandboxKey, new_key
from tests.fixtures.broker import BrokerEnv, build_broker_env

WEBHOOK_SECRET = "whsec-test-4b1d"


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


def own_key(sandbox: SandboxServer, exchange: str = "okx", **rights: Any) -> SandboxKey:
    """A sandbox key only this test changes (the sandbox is shared by the session)."""
    spec: dict[str, Any] = {"read": True, "spot_trade": True, "ip_whitelist": (ROBOT_EGRESS_IP,)}
    key = new_key(exchange, f"health-{uuid.uuid4().hex[:10]}", **(spec | rights))
    sandbox.add_key(key)
    return key
