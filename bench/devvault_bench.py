"""devvault throughput through hvac with one keep-alive session.

Prints KV v2 read and write rates (target: >= 1,500 reads/s on a 2-core box, so that
devvault is never the bottleneck of the broker's benchmarks) and, as a baseline from
the same run, the rate of unauthenticated `GET sys/health` over a bare requests
session. By default devvault runs in its own process (`keybroker devvault`), as dev
mode runs it; `--in-process` serves it from a thread of this process instead (then the
client and the server share one GIL).

    .venv/bin/python bench/devvault_bench.py [--reads 3000] [--writes 1000] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import hvac
import requests


@contextmanager
def devvault(in_process: bool) -> Iterator[tuple[str, str]]:
    token = "hvs." + secrets.token_urlsafe(18)
    if in_process:
        from broker.devvault.server import DevVaultServer

        with DevVaultServer(root_token=token) as srv:
            yield srv.addr, token
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
        yield first["addr"], token
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rate(n: int, call: Callable[[int], object]) -> float:
    for i in range(min(50, n)):  # warm-up: connection, caches
        call(i)
    start = time.perf_counter()
    for i in range(n):
        call(i)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    with devvault(args.in_process) as (addr, token):
        client = hvac.Client(url=addr, token=token)  # hvac's own keep-alive session
        client.sys.enable_secrets_engine("kv", path="bench", options={"version": "2"})
        kv = client.secrets.kv.v2
        kv.create_or_update_secret(
            "site/acct/binance", {"api_key": "k", "secret": "s"}, mount_point="bench"
        )
        session = requests.Session()
        health = rate(args.reads, lambda _: session.get(addr + "/v1/sys/health"))
        reads = rate(
            args.reads,
            lambda _: kv.read_secret_version(
                "site/acct/binance", mount_point="bench", raise_on_deleted_version=True
            ),
        )
        writes = rate(
            args.writes,
            lambda i: kv.create_or_update_secret(
                f"site/acct{i % 100}/okx", {"api_key": str(i)}, mount_point="bench"
            ),
        )
    where = "in-process thread" if args.in_process else "separate process"
    print(f"devvault ({where}), hvac keep-alive session")
    print(f"  baseline GET sys/health (requests): {health:8.0f} req/s")
    print(
        f"  KV v2 reads  (hvac):                {reads:8.0f} req/s  "
        f"({reads / health:.2f} x baseline; target >= 1500)"
    )
    print(
        f"  KV v2 writes (hvac):                {writes:8.0f} req/s  "
        f"({writes / health:.2f} x baseline)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
