"""kill -9 of the broker process during writes under load, then a restart (issue 17).

Eight clients keep replacing six keys through a broker process (`keybroker serve`)
while devvault answers every request 20 ms late, so that each write spends time at
every step. The process is killed with SIGKILL at three moments (three rounds: each
new process reconciles what the previous one left while the load goes on), then
started once more with no load. When the reconciler is done:

- every key has exactly one live version, and it is the current one;
- the key's metadata holds the facts slot of that version and nothing else;
- nothing is staged: no write intent is left, no metadata-only entry exists;
- the audit log (all processes, one file) has a `key.accepted` or `key.replaced`
  line for every version that ever went live (`recovered: true` when the reconciler
  finished it).

Before issue 17 a kill between staging and the data write left staged slots and
metadata-only entries, a kill after the data write left the old version readable and
no audit line, and nothing repaired either on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import hvac
import pytest

from broker.bootstrap import apply_layout, create_caller_token, issue_approle_credentials
from broker.config import Settings
from broker.layout import INTAKE_POLICY, layout_from_settings
from keybroker_dev.ports import free_port
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP
from tests.broker.helpers import key_body

ACCOUNTS = [f"crash-{i}" for i in range(6)]
CLIENTS = 8
KILL_AFTER = (0.4, 0.8, 1.2)  # seconds of load before each kill -9
GRACE = 1.0
MIN_ANSWERED = 8  # writes answered before each kill (three kills: the test wants > 20)


class BrokerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve"],
            env={**env, "KEYBROKER_LISTEN": f"127.0.0.1:{self.port}"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the broker exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not start")
            time.sleep(0.05)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


async def _load(
    url: str, token: str, bodies: list[dict[str, Any]], seconds: float, kill: Any
) -> int:
    """Replace keys from CLIENTS clients; after `seconds`, `kill` the broker mid-flight."""
    sent = 0
    under_load = asyncio.Event()

    async def client(n: int) -> None:
        nonlocal sent
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5
        ) as http:
            i = n
            while True:
                account = ACCOUNTS[i % len(ACCOUNTS)]
                body = {**bodies[i % len(bodies)], "name": f"writer {n} round {i}"}
                try:
                    await http.put(f"/v1/accounts/{account}/keys/binance/site", json=body)
                except httpx.HTTPError:
                    return  # killed
                sent += 1
                if sent >= MIN_ANSWERED:
                    under_load.set()
                i += CLIENTS

    tasks = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
    await asyncio.sleep(seconds)
    # A slow machine may not have finished a few writes yet: the kill must hit a broker
    # under load, so wait (bounded) for some answers first.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(under_load.wait(), timeout=15)
    kill()  # SIGKILL while requests are in flight
    await asyncio.gather(*tasks)
    return sent


def test_kill_9_during_writes_then_restart(devvault, fresh_sandbox, tmp_path: Path) -> None:
    root = hvac.Client(url=devvault.addr, token=devvault.root_token)
    base = Settings(
        vault_addr=devvault.addr,
        exchange_urls=fresh_sandbox.exchange_urls,
        robot_exchange_egress_ips=[ROBOT_EGRESS_IP],
        robot_vault_cidrs=[ROBOT_EGRESS_IP],
    )
    apply_layout(root, layout_from_settings(base))
    creds = issue_approle_credentials(root, "keybroker-broker")
    token = create_caller_token(root, [INTAKE_POLICY], "1h")
    audit = tmp_path / "audit.jsonl"
    env = {
        **os.environ,
        "KEYBROKER_VAULT_ADDR": devvault.addr,
        "KEYBROKER_VAULT_ROLE_ID": creds.role_id,
        "KEYBROKER_VAULT_SECRET_ID": creds.secret_id,
        "KEYBROKER_EXCHANGE_URLS": json.dumps(fresh_sandbox.exchange_urls),
        "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS": ROBOT_EGRESS_IP,
        "KEYBROKER_ROBOT_VAULT_CIDRS": ROBOT_EGRESS_IP,
        "KEYBROKER_AUDIT_LOG": str(audit),
        "KEYBROKER_AUDIT_HMAC_KEY": "crash-test-audit-key",
        "KEYBROKER_INTENT_GRACE": f"{GRACE:g}s",
        "KEYBROKER_RECONCILE_INTERVAL": "200ms",
        "KEYBROKER_CALLER_RATE": "100000",
        "KEYBROKER_CALLER_BURST": "100000",
        "KEYBROKER_EXCHANGE_RATE_LIMITS": json.dumps({"binance": 1000}),
    }
    env.pop("KEYBROKER_CONFIG_FILE", None)
    bodies = [
        key_body(fresh_sandbox.key("binance", label))
        for label in ("read_only", "read_only_no_whitelist")
    ]
    log = tmp_path / "broker.log"
    devvault.faults.latency(0.02)
    sent = 0
    try:
        for seconds in KILL_AFTER:
            broker = BrokerProcess(env, log)
            _warm_up(broker.url, token, fresh_sandbox)
            sent += asyncio.run(_load(broker.url, token, bodies, seconds, broker.kill9))
        devvault.faults.latency(0)
        final = BrokerProcess(env, log)
        try:
            deadline = time.monotonic() + 15
            while _intents(root) and time.monotonic() < deadline:
                time.sleep(0.1)
            with httpx.Client(
                base_url=final.url, headers={"Authorization": f"Bearer {token}"}
            ) as http:
                views = {a: http.get(f"/v1/accounts/{a}/keys/binance/site") for a in ACCOUNTS}
        finally:
            final.stop()
    finally:
        devvault.faults.reset()
    assert sent > 20, "the load never got going"
    assert _intents(root) == []
    lines = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    audited: dict[str, set[int]] = {}
    for line in lines:
        if line["event"] in ("key.accepted", "key.replaced"):
            audited.setdefault(line["account"], set()).add(line["version"])
    for account in ACCOUNTS:
        meta = root.secrets.kv.v2.read_secret_metadata(
            f"site/{account}/binance", mount_point="exchange-keys"
        )["data"]
        current = meta["current_version"]
        live = [int(n) for n, v in meta["versions"].items() if not v["destroyed"]]
        assert live == [current], (account, meta["versions"])
        slots = {key.split(".")[0] for key in meta["custom_metadata"]}
        assert slots == {f"v{current}"}, (account, meta["custom_metadata"])
        assert audited.get(account, set()) >= set(range(1, current + 1)), (account, current)
        view = views[account]
        assert view.status_code == 200 and view.json()["version"] == current
        assert view.json()["name"] == meta["custom_metadata"][f"v{current}.name"]
    # No metadata-only entries anywhere (what a site token's LIST would show).
    listed = root.secrets.kv.v2.list_secrets("site", mount_point="exchange-keys")["data"]["keys"]
    assert sorted(listed) == sorted(f"{a}/" for a in ACCOUNTS)


def _warm_up(url: str, token: str, sandbox: Any) -> None:
    """One check first: the process loads ccxt on its first one (about a second), which
    would otherwise eat the load's time before the kill."""
    body = {"exchange": "binance", "role": "site", **key_body(sandbox.key("binance", "read_only"))}
    del body["name"]
    answer = httpx.post(
        f"{url}/v1/keys/check", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text


def _intents(root: hvac.Client) -> list[str]:
    try:
        listed = root.secrets.kv.v2.list_secrets("intents", mount_point="exchange-keys")
    except hvac.exceptions.InvalidPath:
        return []
    return list(listed["data"]["keys"])


pytestmark = pytest.mark.slow
