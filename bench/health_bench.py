"""Key health benchmark (docs/key-health.md): what verifications cost the broker, and how
fast status queries are over 100,000 stored keys.

1. devvault and the broker run as separate processes (`keybroker devvault`, `keybroker
   serve`); STORED keys are written to Vault as the intake writes them (data + facts in
   custom metadata). Figures: the broker's index rebuild at start-up (time, keys per
   second), then its CPU time (/proc) and the median latency per verification report,
   for reports that keep the status (the usual case) and reports that change it (audit
   line, metadata write, gauge, webhook queue); the report latency from a broker whose
   index resyncs back to back; one periodic resync pass of a built index (keys per
   second, broker CPU per key).
2. Status queries: a broker in this process gets 100,000 entries in its index; figures
   are the index query by status and `GET /v1/keys?status=...` over loopback HTTP
   (target: a listing by status within 1 s).

Usage: .venv/bin/python bench/health_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import hvac

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from broker_bench import Process, _cpu_seconds  # noqa: E402

from broker.api.server import start_in_thread  # noqa: E402
from broker.bootstrap import apply_layout, create_caller_token, issue_approle_credentials  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.health.index import Entry  # noqa: E402
from broker.health.status import Health, KeyStatus  # noqa: E402
from broker.keystore import KeyFacts  # noqa: E402
from broker.layout import INTAKE_POLICY, ROBOT_READ_POLICY, layout_from_settings  # noqa: E402
from broker.reasons import Permissions  # noqa: E402
from keybroker_dev.ports import free_port  # noqa: E402

EXCHANGES = ("binance", "okx", "bybit", "kucoin", "gate", "bitget")
INDEXED = 100_000


def store_keys(root: hvac.Client, count: int) -> list[tuple[str, str]]:
    """`count` robot keys as the intake writes them (data, then version slot v1.*)."""
    now = datetime.now(UTC).replace(microsecond=0)
    facts = KeyFacts(
        name="bench",
        api_key_masked="abcd...wxyz",
        status="active",
        checked_at=now,
        permissions=Permissions(read=True, spot_trade=True),
        ip_restricted=True,
        ip_whitelist=["203.0.113.10"],
        expires_at=None,
    )
    keys = [(f"acct-{i:06d}", EXCHANGES[i % len(EXCHANGES)]) for i in range(count)]

    def write(item: tuple[str, str]) -> None:
        account, exchange = item
        path = f"robot/{account}/{exchange}"
        client = hvac.Client(url=root.url, token=root.token)
        client.secrets.kv.v2.create_or_update_secret(
            path, secret={"api_key": "k" * 16, "secret": "s" * 32}, mount_point="exchange-keys"
        )
        client.secrets.kv.v2.update_metadata(
            path, custom_metadata=facts.to_slot(1), mount_point="exchange-keys"
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, keys))
    return keys


def _reporter(http: httpx.Client, broker_url: str, token: str) -> Callable[[str, str, bool], float]:
    """A function that sends one verification report and returns its latency."""
    headers = {"Authorization": f"Bearer {token}"}

    def report(account: str, exchange: str, withdraw: bool) -> float:
        body = {
            "version": 1,
            "checked_at": datetime.now(UTC).isoformat(),
            "trigger": "schedule",
            "accepted": not withdraw,
            "reasons": [{"code": "withdraw_enabled", "severity": "error"}] if withdraw else [],
        }
        started = time.perf_counter()
        answer = http.post(
            f"{broker_url}/v1/accounts/{account}/keys/{exchange}/robot/verifications",
            json=body,
            headers=headers,
        )
        answer.raise_for_status()
        return time.perf_counter() - started

    return report


def bench_reports(
    broker_url: str, pid: int, token: str, keys: list[tuple[str, str]], n: int
) -> None:
    with httpx.Client(timeout=30) as http:
        report = _reporter(http, broker_url, token)
        for label, flip in (("status unchanged", False), ("status changed", True)):
            sample = keys[:n]
            if not flip:  # make them verified first, so the measured reports change nothing
                for account, exchange in sample:
                    report(account, exchange, False)
            cpu = _cpu_seconds(pid)
            times = [report(a, e, flip) for a, e in sample]
            per = (_cpu_seconds(pid) - cpu) / len(sample)
            print(
                f"verification report, {label}: broker CPU {per * 1000:.2f} ms, "
                f"median latency {statistics.median(times) * 1000:.1f} ms ({len(sample)} reports)"
            )


def bench_reports_while_resyncing(
    broker_env: dict[str, str], intake: str, token: str, keys: list[tuple[str, str]], n: int
) -> None:
    """Report latency from a broker whose index resyncs all the time (a 0.2 s interval,
    shorter than one pass): the resync must not hold requests up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = broker_env | {
        "KEYBROKER_LISTEN": f"127.0.0.1:{port}",
        "KEYBROKER_HEALTH_RESYNC_INTERVAL": "200ms",
    }
    broker = Process(["serve"], f"{url}/healthz", env)
    try:
        with httpx.Client(timeout=30) as http:
            while not http.get(
                f"{url}/v1/keys", params={"limit": 0}, headers={"Authorization": f"Bearer {intake}"}
            ).json()["index_complete"]:
                time.sleep(0.02)
            report = _reporter(http, url, token)
            times = sorted(report(a, e, False) for a, e in keys[:n])
        median, p95 = statistics.median(times), times[int(len(times) * 0.95)]
        print(
            f"verification report while the index resyncs back to back: median latency "
            f"{median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms "
            f"({len(times)} reports)"
        )
    finally:
        broker.stop()


def bench_resync(vault_addr: str, root_token: str) -> None:
    """The periodic resync (KEYBROKER_HEALTH_RESYNC_INTERVAL) of an index already built:
    one pass over every stored key's metadata, in this process (its CPU is the broker's)."""
    import asyncio

    from broker.api.app import create_app

    settings = Settings(vault_addr=vault_addr, vault_token=root_token, verify_interval=3600)
    state = create_app(settings, audit_stream=open(os.devnull, "w")).state.broker  # noqa: SIM115

    async def run() -> tuple[int, float, float]:
        try:
            await state.health.rebuild()
            started, cpu = time.perf_counter(), time.process_time()
            await state.health.resync()
            return (
                len(state.health.index),
                time.perf_counter() - started,
                time.process_time() - cpu,
            )
        finally:
            await state.session.aclose()

    total, took, cpu = asyncio.run(run())
    print(
        f"index resync pass: {total} keys in {took:.2f} s ({total / took:.0f} keys/s, "
        f"{cpu / total * 1000:.2f} ms broker CPU per key; 100,000 keys: "
        f"~{100_000 * took / total:.0f} s per pass)"
    )


def bench_queries(vault_addr: str, root_token: str) -> None:
    root = hvac.Client(url=vault_addr, token=root_token)
    settings = Settings(vault_addr=vault_addr, vault_token=root_token, verify_interval=3600)
    running = start_in_thread(settings, audit_stream=open(os.devnull, "w"))  # noqa: SIM115
    try:
        index = running.app.state.broker.health.index
        deadline = time.monotonic() + 120
        while not index.complete and time.monotonic() < deadline:
            time.sleep(0.05)
        now = datetime.now(UTC)
        statuses = list(KeyStatus)
        for i in range(INDEXED):
            # 80% connected; the rest spread over the other statuses.
            status = KeyStatus.CONNECTED if i % 10 < 8 else statuses[1 + i % (len(statuses) - 1)]
            index.put(
                Entry(
                    f"q-{i:06d}",
                    EXCHANGES[i % len(EXCHANGES)],
                    "robot",
                    1,
                    Health(status),
                    now,
                    now,
                )
            )
        print(f"index: {len(index)} keys")
        for status in (KeyStatus.RIGHTS_CHANGED, KeyStatus.CONNECTED):
            started = time.perf_counter()
            _, total = index.query(status=status)
            took = (time.perf_counter() - started) * 1000
            print(f"index query status={status.value}: {total} keys in {took:.1f} ms")
        token = create_caller_token(root, [INTAKE_POLICY], "1h")
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            http.get(f"{running.url}/v1/keys", params={"limit": 1})  # caller lookup cached
            for status, limit in (
                ("rights_changed", 1000),
                ("rights_changed", 100_000),
                ("connected", 1000),
                ("connected", 100_000),
            ):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    answer = http.get(
                        f"{running.url}/v1/keys", params={"status": status, "limit": limit}
                    )
                    answer.raise_for_status()
                    times.append(time.perf_counter() - started)
                body = answer.json()
                print(
                    f"GET /v1/keys?status={status}&limit={limit}: {len(body['keys'])} of "
                    f"{body['total']} keys, median {statistics.median(times):.3f} s (target < 1 s)"
                )
    finally:
        running.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer keys and reports")
    args = parser.parse_args()
    stored, reports = (500, 100) if args.quick else (2000, 300)
    root_token = f"bench-{uuid.uuid4().hex}"
    vault_port = free_port()
    vault_addr = f"http://127.0.0.1:{vault_port}"
    processes: list[Process] = []
    try:
        processes.append(
            Process(
                ["devvault", "--port", str(vault_port), "--root-token", root_token],
                f"{vault_addr}/v1/sys/health",
            )
        )
        root = hvac.Client(url=vault_addr, token=root_token)
        settings = Settings(vault_addr=vault_addr, robot_vault_cidrs=["127.0.0.1/32"])
        apply_layout(root, layout_from_settings(settings))
        started = time.perf_counter()
        keys = store_keys(root, stored)
        print(f"stored {stored} keys in Vault in {time.perf_counter() - started:.1f} s")
        creds = issue_approle_credentials(root, "keybroker-broker")
        intake = create_caller_token(root, [INTAKE_POLICY], "2h")
        robot = create_caller_token(root, [ROBOT_READ_POLICY], "2h")
        port = free_port()
        broker_url = f"http://127.0.0.1:{port}"
        launched = time.perf_counter()
        broker_env = {
            "KEYBROKER_VAULT_ADDR": vault_addr,
            "KEYBROKER_VAULT_ROLE_ID": creds.role_id,
            "KEYBROKER_VAULT_SECRET_ID": creds.secret_id,
            "KEYBROKER_AUDIT_LOG": os.devnull,
        }
        broker = Process(
            ["serve"],
            f"{broker_url}/healthz",
            broker_env | {"KEYBROKER_LISTEN": f"127.0.0.1:{port}"},
        )
        processes.append(broker)
        while True:
            listing = httpx.get(
                f"{broker_url}/v1/keys",
                params={"limit": 0},
                headers={"Authorization": f"Bearer {intake}"},
                timeout=30,
            ).json()
            if listing["index_complete"]:
                break
            time.sleep(0.02)
        rebuilt = time.perf_counter() - launched - broker.cold_start
        total = listing["total"]
        print(
            f"index rebuild at start-up: {total} keys in {rebuilt:.2f} s after /healthz "
            f"({total / rebuilt:.0f} keys/s; 100,000 keys: ~{100_000 / (total / rebuilt):.0f} s)"
        )
        bench_reports(broker_url, broker.proc.pid, robot, keys, reports)
        bench_reports_while_resyncing(broker_env, intake, robot, keys, reports)
        bench_resync(vault_addr, root_token)
        bench_queries(vault_addr, root_token)
    finally:
        for process in reversed(processes):
            process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
