"""devvault throughput through hvac with one keep-alive session.

Prints KV v2 read and write rates (target: >= 1,500 reads/s on a 2-core box, so that
devvault is never the bottleneck of the broker's benchmarks) and, as a baseline from
the same run, the rate of unauthenticated `GET sys/health` over a bare requests
session. By default devvault runs in its own process (`keybroker devvault`), as dev
mode runs it; `--in-process` serves it from a thread of this process instead (then the
client and the server share one GIL).

Wall-clock rates depend on what else the machine runs, so the CPU time per request of
the client and of the server (from /proc) is printed too, with the rate they allow
when each has a core: 1000 / (client ms + server ms) for one synchronous client.

    .venv/bin/python bench/devvault_bench.py [--reads 3000] [--writes 1000] [--clients 2]
                                             [--in-process]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import hvac
import requests


def process_cpu(pid: int | None) -> float:
    """User+system CPU seconds of a process (Linux /proc); nan when unavailable."""
    if pid is None:
        return math.nan
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    rate: float  # requests/s, wall clock
    client_ms: float  # CPU of this process per request (includes the server in-process)
    server_ms: float  # CPU of the devvault process per request (nan in-process)

    @property
    def cpu_bound_rate(self) -> float:
        server = 0.0 if math.isnan(self.server_ms) else self.server_ms
        return 1000 / (self.client_ms + server)

    def line(self, label: str, baseline: float | None = None) -> str:
        ratio = f"  ({self.rate / baseline:.2f} x baseline)" if baseline else ""
        server = "n/a" if math.isnan(self.server_ms) else f"{self.server_ms:.3f}"
        return (
            f"  {label:<34} {self.rate:7.0f} req/s{ratio}\n"
            f"  {'':<34} CPU/request: client {self.client_ms:.3f} ms, server {server} ms"
            f" -> {self.cpu_bound_rate:.0f} req/s when each has a core"
        )


@contextmanager
def devvault(in_process: bool) -> Iterator[tuple[str, str, int | None]]:
    token = "hvs." + secrets.token_urlsafe(18)
    if in_process:
        from keybroker_dev.devvault.server import DevVaultServer

        with DevVaultServer(root_token=token) as srv:
            yield srv.addr, token, None
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "devvault", "--port", "0", "--root-token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        yield first["addr"], token, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure(n: int, call: Callable[[int], object], server_pid: int | None) -> Figures:
    for i in range(min(50, n)):  # warm-up: connection, caches
        call(i)
    cpu0, srv0, start = time.process_time(), process_cpu(server_pid), time.perf_counter()
    for i in range(n):
        call(i)
    wall = time.perf_counter() - start
    return Figures(
        rate=n / wall,
        client_ms=(time.process_time() - cpu0) * 1000 / n,
        server_ms=(process_cpu(server_pid) - srv0) * 1000 / n,
    )


def _client_reads(args: tuple[str, str, int]) -> int:
    """One client process: its own hvac keep-alive session, `n` KV reads."""
    addr, token, n = args
    kv = hvac.Client(url=addr, token=token).secrets.kv.v2
    for _ in range(n):
        kv.read_secret_version(
            "site/acct/binance", mount_point="bench", raise_on_deleted_version=True
        )
    return n


def aggregate_reads(addr: str, token: str, clients: int, per_client: int) -> float:
    """KV reads/s of `clients` client processes at once (the server's share of the work
    shows once the client side is spread over processes)."""
    with multiprocessing.Pool(clients) as pool:
        pool.map(_client_reads, [(addr, token, 20)] * clients)  # warm-up
        start = time.perf_counter()
        done = sum(pool.map(_client_reads, [(addr, token, per_client)] * clients))
        return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes for the aggregate read rate"
    )
    args = parser.parse_args()
    with devvault(args.in_process) as (addr, token, pid):
        client = hvac.Client(url=addr, token=token)  # hvac's own keep-alive session
        client.sys.enable_secrets_engine("kv", path="bench", options={"version": "2"})
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(
            "site/acct/binance", {"api_key": "k", "secret": "s"}, mount_point="bench"
        )
        session = requests.Session()
        health = measure(args.reads, lambda _: session.get(addr + "/v1/sys/health"), pid)
        reads = measure(
            args.reads,
            lambda _: kv.read_secret_version(
                "site/acct/binance", mount_point="bench", raise_on_deleted_version=True
            ),
            pid,
        )
        writes = measure(
            args.writes,
            lambda i: kv.create_or_update_secret(
                f"site/acct{i % 100}/okx", {"api_key": str(i)}, mount_point="bench"
            ),
            pid,
        )
        aggregate = (
            aggregate_reads(addr, token, args.clients, args.reads // args.clients)
            if args.clients > 1
            else None
        )
    where = "in-process thread" if args.in_process else "separate process"
    print(f"devvault ({where}), hvac keep-alive session; load average {os.getloadavg()[0]:.1f}")
    print(health.line("baseline GET sys/health (requests)"))
    print(reads.line("KV v2 reads (hvac), target >= 1500", health.rate))
    print(writes.line("KV v2 writes (hvac)", health.rate))
    if aggregate is not None:
        print(
            f"  KV v2 reads, {args.clients} hvac client processes at once: {aggregate:7.0f} req/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
