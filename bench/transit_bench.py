"""What signing through Vault Transit costs (docs/custody.md, "Cost").

Prints, in one run against devvault on loopback (its own process, as dev mode runs it):

- the latency of building one signed exchange request (ccxt's own `sign()` of OKX,
  HMAC-SHA256) holding the secret locally, and through Vault (broker/signing.py: one
  `transit/hmac` call over a keep-alive hvac session), p50 and p99, and what Vault adds
  (target: at most 1.5 ms at p50);
- Transit HMACs per second through devvault: one per request, and with `batch_input`.

The rest of an exchange request (the network to the exchange) is the same either way.

    .venv/bin/python bench/transit_bench.py [--requests 1000] [--hmacs 2000] [--in-process]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ccxt
import hvac

sys.path.insert(0, os.path.dirname(__file__))
from devvault_bench import devvault

from broker.custody.byok import HASH_FUNCTION, wrap_for_import
from broker.custody.material import classify
from broker.signing import TransitSigner, install, stand_in

MOUNT = "exchange-signing"
SECRET = "0123456789abcdef0123456789abcdef"  # a bench-only OKX-shaped secret


def latencies(n: int, call: Callable[[], object]) -> list[float]:
    for _ in range(min(50, n)):  # warm-up: connection, caches
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def okx(secret: str) -> Any:
    return ccxt.okx({"apiKey": "bench-key", "secret": secret, "password": "bench-pass"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--hmacs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()

    with devvault(args.in_process) as (addr, token, _pid):
        root = hvac.Client(url=addr, token=token)
        root.sys.enable_secrets_engine("transit", path=MOUNT)
        form = classify("okx", SECRET)
        pem = root.read(f"{MOUNT}/wrapping_key")["data"]["public_key"]
        root.write_data(
            f"{MOUNT}/keys/bench/import",
            data={
                "ciphertext": wrap_for_import(form.material, pem),
                "hash_function": HASH_FUNCTION,
                "type": form.transit_type,
            },
        )

        def transit_call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return dict(root.write_data(f"{MOUNT}/{path}", data=body)["data"])

        local = okx(SECRET)
        stand = stand_in(form.scheme)
        remote = install(okx(stand), TransitSigner(transit_call, "bench"), form.scheme, stand)
        request = ("account/config", ["private"], "GET", {})
        assert local.sign(*request)["url"] == remote.sign(*request)["url"]
        here = latencies(args.requests, lambda: local.sign(*request))
        vault = latencies(args.requests, lambda: remote.sign(*request))

        message = {"input": base64.b64encode(b"GET/api/v5/account/config").decode()}
        start = time.perf_counter()
        for _ in range(args.hmacs):
            root.write_data(f"{MOUNT}/hmac/bench", data=message)
        single = args.hmacs / (time.perf_counter() - start)
        batch = {"batch_input": [message] * args.batch}
        rounds = max(1, args.hmacs // args.batch)
        start = time.perf_counter()
        for _ in range(rounds):
            root.write_data(f"{MOUNT}/hmac/bench", data=batch)
        batched = rounds * args.batch / (time.perf_counter() - start)

    where = "in this process" if args.in_process else "its own process"
    print(f"transit bench: devvault on loopback ({where}), {args.requests} signed requests")
    print("  one signed OKX request (ccxt sign(), HMAC-SHA256)")
    print(f"    secret held locally   p50 {p(here, 50):6.3f} ms   p99 {p(here, 99):6.3f} ms")
    print(f"    signed through Vault  p50 {p(vault, 50):6.3f} ms   p99 {p(vault, 99):6.3f} ms")
    added50, added99 = p(vault, 50) - p(here, 50), p(vault, 99) - p(here, 99)
    verdict = "within" if added50 <= 1.5 else "ABOVE"
    print(
        f"    Vault adds            p50 {added50:6.3f} ms   p99 {added99:6.3f} ms"
        f"   ({verdict} the 1.5 ms p50 target)"
    )
    print("  Transit HMACs through devvault (one hvac keep-alive session)")
    print(f"    one per request       {single:8.0f} HMACs/s")
    print(f"    batch_input of {args.batch:<4}  {batched:8.0f} HMACs/s")


if __name__ == "__main__":
    main()
