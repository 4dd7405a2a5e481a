"""Exchange-check benchmark: concurrency and memory (DESIGN.md "Targets").

Prints, from one run:
- wall time and checks/second for waves of 500 concurrent key checks through
  `KeyChecker` (real ccxt signing) against the sandbox with 100 ms added latency
  (target: under 0.3 s per wave), and the same waves with no added latency as the
  baseline: the difference is what the latency cost; ~1x the latency means nothing was
  serialized. Also the broker side's CPU per check and the machine's load average, since
  a wave's wall time is bounded by the CPU both processes get;
- resident memory of a process with every exchange adapter and ccxt client loaded,
  against a bare interpreter measured the same way (target: under 150 MB), plus the
  whole broker app when it imports.

The sandbox runs in its own process so that its CPU does not count against the broker.
Usage: .venv/bin/python bench/exchange_bench.py [--checks 500] [--waves 3] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

# Kraken refuses a nonce it has seen for a key; 500 concurrent checks of one key would
# race, so the wave uses the other exchanges (Kraken is covered by the test matrix).
WAVE_EXCHANGES = ("binance", "okx", "bybit", "kucoin", "gate", "bitget", "htx", "bingx",
                  "coinbase", "deribit", "mexc")  # fmt: skip


def serve_sandbox(conn: Connection) -> None:
    """Child process: the sandbox; obeys ("latency", seconds) and ("stop",) messages."""
    from keybroker_dev.sandbox import SandboxServer

    with SandboxServer() as sandbox:
        keys = {
            exchange: {
                label: key.credentials() for label, key in labels.items()
                if label in ("read_only", "trade_whitelisted")
            }
            for exchange, labels in sandbox.keys.items()
        }  # fmt: skip
        conn.send({"exchange_urls": sandbox.exchange_urls, "keys": keys})
        while True:
            message = conn.recv()
            if message[0] != "latency":
                break
            sandbox.set_latency(message[1])
            conn.send("ok")


Wave = tuple[float, float, int]  # wall seconds, broker CPU seconds, checks answered


async def run_waves(
    info: dict[str, Any],
    checks: int,
    waves: int,
    conn: Connection,
    latencies: list[float],
    small: int,
) -> tuple[dict[float, list[Wave]], list[float]]:
    from broker.config import Settings
    from broker.exchanges.base import Credentials
    from broker.exchanges.checker import KeyChecker

    settings = Settings(
        exchange_urls=info["exchange_urls"],
        robot_exchange_egress_ips=["203.0.113.10"],
        check_timeout=30.0,
        # The sandbox, not a real exchange: lift the per-exchange request limits, so the
        # waves measure the checker's own cost (broker/ratelimit.py would queue them).
        exchange_rate_limits={exchange: 100_000.0 for exchange in info["exchange_urls"]},
    )
    plan = []
    for i in range(checks):
        exchange = WAVE_EXCHANGES[i % len(WAVE_EXCHANGES)]
        role, label = ("site", "read_only") if i % 2 else ("robot", "trade_whitelisted")
        c = info["keys"][exchange][label]
        plan.append((exchange, role, Credentials(c["api_key"], c["secret"], c.get("passphrase"))))

    out: dict[float, list[Wave]] = {}
    async with KeyChecker(settings) as checker:
        # warm-up: build each exchange's client template and open connections
        await asyncio.gather(*(checker.check(e, r, c) for e, r, c in plan))
        for latency in latencies:
            conn.send(("latency", latency))
            conn.recv()
            out[latency] = []
            for _ in range(waves):
                started, cpu = time.perf_counter(), time.process_time()
                results = await asyncio.gather(*(checker.check(e, r, c) for e, r, c in plan))
                wall = time.perf_counter() - started
                checked = sum(1 for r in results if not r.retryable)
                out[latency].append((wall, time.process_time() - cpu, checked))
        # A small wave at the last latency: too little CPU work to hide serialization.
        small_walls = []
        for _ in range(waves):
            started = time.perf_counter()
            await asyncio.gather(*(checker.check(e, r, c) for e, r, c in plan[:small]))
            small_walls.append(time.perf_counter() - started)
    return out, small_walls


RSS_PROBE = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
mode = sys.argv[1]
if mode in ('adapters', 'broker'):
    import asyncio
    from broker.config import Settings
    from broker.exchanges.checker import KeyChecker
    from broker.exchanges.registry import ADAPTERS
    async def load():
        checker = KeyChecker(Settings())
        for exchange in ADAPTERS:
            checker._clients.template(exchange)  # every ccxt client built
        await checker.aclose()
    asyncio.run(load())
if mode == 'broker':
    import broker.api.app  # noqa: F401  (the HTTP edge, intake, Vault access)
print(rss())
"""


def rss_of(mode: str) -> float | None:
    done = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, mode], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--small", type=int, default=50, help="size of the small wave")
    args = parser.parse_args()

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve_sandbox, args=(child,))
    server.start()
    try:
        info = parent.recv()
        latencies = [0.0, args.latency]
        runs, small_walls = asyncio.run(
            run_waves(info, args.checks, args.waves, parent, latencies, args.small)
        )
    finally:
        parent.send(("stop",))
        server.join(10)

    load = os.getloadavg()[0]
    print(
        f"exchange checks: waves of {args.checks} concurrent checks "
        f"({os.cpu_count()} CPUs, load average {load:.1f})"
    )
    best: dict[float, float] = {}
    for latency, waves in runs.items():
        print(f"  sandbox added latency {latency * 1000:.0f} ms:")
        for i, (wall, cpu, checked) in enumerate(waves, 1):
            print(
                f"    wave {i}: wall {wall:.3f} s  {args.checks / wall:,.0f} checks/s  "
                f"broker CPU {cpu * 1000 / args.checks:.2f} ms/check  "
                f"answered {checked}/{args.checks}"
            )
        best[latency] = min(wall for wall, _, _ in waves)
    cost = best[args.latency] - best[0.0]
    print(
        f"  latency cost per wave: {cost:.3f} s for {args.latency:.3f} s of latency "
        f"({cost / args.latency:.2f}x; 1x = fully concurrent, {args.checks}x = serialized)"
    )
    small_best = min(small_walls)
    print(
        f"  {args.small} concurrent checks at {args.latency * 1000:.0f} ms: "
        f"wall {small_best:.3f} s (serialized: {args.small * args.latency:.1f} s)"
    )
    verdict = "OK" if best[args.latency] < 0.3 else "ABOVE TARGET"
    print(f"  best wave with latency {best[args.latency]:.3f} s, target < 0.300 s: {verdict}")

    bare, adapters, broker = rss_of("bare"), rss_of("adapters"), rss_of("broker")
    print("memory (RSS):")
    print(f"  bare interpreter            {bare:7.1f} MB")
    if adapters is not None and bare is not None:
        print(f"  every adapter + ccxt client {adapters:7.1f} MB  (+{adapters - bare:.1f} MB)")
        print(f"  target < 150 MB: {'OK' if adapters < 150 else 'ABOVE TARGET'}")
    if broker is not None:
        print(f"  + broker HTTP app imported  {broker:7.1f} MB")
    else:
        print("  broker HTTP app: not importable in this checkout (skipped)")


if __name__ == "__main__":
    main()
