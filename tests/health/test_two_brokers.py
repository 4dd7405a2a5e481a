"""Key health with two broker processes on one Vault (docs/key-health.md "More than one
broker"): neither undoes the other's metadata writes, and each one's status index sees
what the other stored after its resync.

The interleavings are forced, not hoped for: a hook in one broker's Vault session runs
the other broker's request between that broker's metadata read and its metadata write.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from broker.api.server import RunningBroker, start_in_thread
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import AuditCapture, BrokerEnv, build_broker_env, new_account
from tests.health.conftest import own_key, robot_read_token, wait_for


@dataclass
class TwoBrokers:
    a: BrokerEnv  # broker A, with the env's tokens and Vault access
    b: RunningBroker  # broker B: another process's app on the same Vault
    b_audit: AuditCapture
    robot_token: str

    def put(self, url: str, account: str, key: Any, name: str) -> dict[str, Any]:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {self.a.intake_token}"}, timeout=30
        ) as http:
            answer = http.put(
                f"/v1/accounts/{account}/keys/okx/robot", json={"name": name, **key.credentials()}
            )
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def get(self, url: str, path: str) -> dict[str, Any]:
        return dict(json.loads(self.get_text(url, path)))

    def get_text(self, url: str, path: str) -> str:
        headers = {"Authorization": f"Bearer {self.a.intake_token}"}
        answer = httpx.get(url + path, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def report(self, url: str, account: str, version: int, **outcome: Any) -> dict[str, Any]:
        body = {
            "version": version,
            "checked_at": datetime.now(UTC).isoformat(),
            "accepted": True,
            "reasons": [],
        } | outcome
        answer = httpx.post(
            f"{url}/v1/accounts/{account}/keys/okx/robot/verifications",
            headers={"Authorization": f"Bearer {self.robot_token}"},
            json=body,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def custom(self, account: str) -> dict[str, str]:
        meta = self.a.metadata("robot", account, "okx")
        assert meta is not None
        return dict(meta["custom_metadata"] or {})


@contextmanager
def two_brokers(devvault: Any, sandbox: SandboxServer, **b_settings: Any) -> Iterator[TwoBrokers]:
    a = build_broker_env(
        devvault.addr,
        devvault.root_token,
        sandbox.exchange_urls,
        verify_interval=3600,
        health_resync_interval=0,
    )
    audit = AuditCapture()
    b = start_in_thread(
        a.settings.model_copy(update={"health_resync_interval": 0.0} | b_settings),
        audit_stream=audit,
    )
    try:
        yield TwoBrokers(a, b, audit, robot_read_token(a.root))
    finally:
        b.stop()
        a.running.stop()


@pytest.fixture
def brokers(devvault: Any, sandbox: SandboxServer) -> Iterator[TwoBrokers]:
    with two_brokers(devvault, sandbox) as two:
        yield two


def _before_metadata_write(
    running: RunningBroker, metadata_path: str, action: Callable[[], object]
) -> list[str]:
    """Run `action` (blocking, in a worker thread) once, just before `running`'s next
    POST or PATCH of `metadata_path`; returns the methods of the writes it saw."""
    session = running.app.state.broker.session
    original = session.request
    seen: list[str] = []

    async def request(operation: str, method: str, path: str, **kwargs: Any) -> Any:
        if method in ("POST", "PATCH") and path == f"/v1/{metadata_path}":
            seen.append(method)
            if len(seen) == 1:
                await asyncio.to_thread(action)
        return await original(operation, method, path, **kwargs)

    session.request = request
    return seen


def test_a_health_write_keeps_the_intake_result_another_broker_wrote_meanwhile(
    brokers: TwoBrokers, sandbox: SandboxServer
) -> None:
    """Broker A reads the key's metadata for a report (version 1); broker B's intake then
    replaces the key (version 2); A's health write must not bring back version 1's
    custom_metadata over version 2's slot (its name, masked key, permissions)."""
    account = new_account("lost")
    first, second = own_key(sandbox), own_key(sandbox)
    assert brokers.put(brokers.a.url, account, first, "first")["version"] == 1
    path = f"{brokers.a.mount}/metadata/robot/{account}/okx"
    replaced: list[dict[str, Any]] = []
    _before_metadata_write(
        brokers.a.running,
        path,
        lambda: replaced.append(brokers.put(brokers.b.url, account, second, "second")),
    )

    brokers.report(brokers.a.url, account, 1)

    assert replaced and replaced[0]["version"] == 2
    custom = brokers.custom(account)
    assert custom.get("v2.name") == "second", sorted(custom)
    assert not any(k.startswith("v1.") for k in custom)
    for url in (brokers.a.url, brokers.b.url):
        key = brokers.get(url, f"/v1/accounts/{account}/keys/okx/robot")
        assert (key["version"], key["name"]) == (2, "second")
        # The health slot A wrote is about version 1: no reader takes it for version 2.
        assert key["health"]["version"] == 2 and key["health"]["verified_at"] is None


def test_the_intake_keeps_a_health_report_on_its_new_version(
    brokers: TwoBrokers, sandbox: SandboxServer
) -> None:
    """Broker B's intake has committed version 2 but not yet written its slot; a consumer
    that already loaded version 2 reports to broker A (withdrawals enabled). B's slot
    write must not drop that health of version 2."""
    account = new_account("same")
    first, second = own_key(sandbox), own_key(sandbox)
    brokers.put(brokers.a.url, account, first, "first")
    path = f"{brokers.a.mount}/metadata/robot/{account}/okx"
    reported: list[dict[str, Any]] = []
    withdraw = [{"code": "withdraw_enabled", "severity": "error"}]
    _before_metadata_write(
        brokers.b,
        path,
        lambda: reported.append(
            brokers.report(brokers.a.url, account, 2, accepted=False, reasons=withdraw)
        ),
    )

    assert brokers.put(brokers.b.url, account, second, "second")["version"] == 2

    assert reported and reported[0]["health"]["status"] == "rights_changed"
    custom = brokers.custom(account)
    assert (custom.get("health.version"), custom.get("health.status")) == ("2", "rights_changed")
    assert custom.get("v2.name") == "second"
    for url in (brokers.a.url, brokers.b.url):
        health = brokers.get(url, f"/v1/accounts/{account}/keys/okx/robot")["health"]
        assert (health["status"], health["detail"], health["stop"]) == (
            "rights_changed",
            "withdraw",
            True,
        )


def test_a_report_at_one_broker_shows_in_the_other_brokers_listing_after_its_resync(
    devvault: Any, sandbox: SandboxServer
) -> None:
    with two_brokers(devvault, sandbox, health_resync_interval=0.3) as two:
        account = new_account("resync")
        gone = new_account("resync-gone")
        two.put(two.a.url, account, own_key(sandbox), "main")
        two.put(two.a.url, gone, own_key(sandbox), "old")
        wait_for("B indexes A's key", lambda: _listed(two, two.b.url, "connected", account))
        withdraw = [{"code": "withdraw_enabled", "severity": "error"}]
        two.report(two.a.url, account, 1, accepted=False, reasons=withdraw)
        with httpx.Client(
            base_url=two.a.url, headers={"Authorization": f"Bearer {two.a.intake_token}"}
        ) as http:
            assert http.delete(f"/v1/accounts/{gone}/keys/okx/robot").status_code == 204

        wait_for("B sees the report", lambda: _listed(two, two.b.url, "rights_changed", account))
        wait_for("B drops the deleted key", lambda: not _listed(two, two.b.url, None, gone))
        listing = two.get(two.b.url, f"/v1/keys?account={account}")
        assert listing["index_complete"] is True
        assert listing["counts"] == {"rights_changed": {"okx": 1}}
        # The other broker audits nothing: the change was audited where it was reported.
        assert not [x for x in two.b_audit.lines() if x["event"] == "key.status_changed"]
        assert _resyncing(two.b) and not _resyncing(two.a.running)  # A's interval is 0
        metrics = two.get_text(two.b.url, "/metrics")
        synced = [x for x in metrics.splitlines() if x.startswith("keybroker_health_index_synced")]
        assert synced and time.time() - 60 < float(synced[0].split()[1]) <= time.time()
        # The listing says when its index last saw Vault whole.
        listed_at = datetime.fromisoformat(listing["index_synced_at"]).timestamp()
        assert time.time() - 60 < listed_at <= time.time()
        assert "keybroker_webhook_events_in_flight 0.0" in metrics


def test_a_sweep_keeps_a_verification_another_broker_received(
    devvault: Any, sandbox: SandboxServer
) -> None:
    """Broker B (no resync) indexed the key at intake; every report goes to broker A.
    B's sweep must not mark the key `unverified` (twice the 1 s schedule passes long
    before the end) while A keeps storing fresh verifications."""
    with two_brokers(devvault, sandbox, verify_interval=1.0) as two:
        account = new_account("sweep2")
        two.put(two.b.url, account, own_key(sandbox), "main")
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            two.report(two.a.url, account, 1)
            time.sleep(0.2)
        changed = [
            x
            for x in two.b_audit.lines()
            if x["event"] == "key.status_changed" and x["account"] == account
        ]
        assert changed == []
        assert two.custom(account)["health.status"] == "connected"
        health = two.get(two.b.url, f"/v1/accounts/{account}/keys/okx/robot")["health"]
        assert health["status"] == "connected"


def _resyncing(running: RunningBroker) -> bool:
    """Whether the broker runs the periodic resync (KEYBROKER_HEALTH_RESYNC_INTERVAL > 0)."""
    health = running.app.state.broker.health
    wait_for("the start-up rebuild", lambda: health.index.complete)
    return any(t.get_coro().__name__ == "_resync_forever" for t in health._tasks)


def _listed(two: TwoBrokers, url: str, status: str | None, account: str) -> bool:
    query = f"/v1/keys?account={account}" + (f"&status={status}" if status else "")
    return bool(two.get(url, query)["keys"])
