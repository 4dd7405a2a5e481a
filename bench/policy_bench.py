"""Policy-check benchmark: prints figures, asserts nothing (DESIGN.md targets).

1. `keybroker policy check` on the shipped policies (target < 1 s): in-process time
   of `policies.check.check`, and the whole command in a fresh interpreter.
2. Exact analysis of 1,000 generated policies x 100 invariants (target < 10 s), two
   readings: (a) each policy is its own principal (100,000 analyses), (b) one
   principal holding all 1,000 policies (100 analyses over one big ACL).
   Baseline in the same run: the evaluator alone deciding the same number of
   requests, so the ratio shows what the class enumeration costs on top.

Run: .venv/bin/python bench/policy_bench.py [--seed N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from policies.analysis import Principal, find_granted, find_missing
from policies.check import check
from policies.model import PathRule, Policy

MOUNTS = ["secret", "kv", "exchange-keys"]
APIS = ["data", "metadata", "destroy"]
CAPS = ["read", "list", "create", "update", "delete"]


def _segment(rng: random.Random, kind: str, n: int) -> str:
    roll = rng.random()
    if roll < 0.2:
        return "+"
    return f"{kind}-{rng.randrange(n)}"


def generated_policy(rng: random.Random, index: int) -> Policy:
    """A team policy of 2-6 stanzas shaped like real KV v2 / auth / sys grants."""
    rules = []
    for line in range(rng.randint(2, 6)):
        roll = rng.random()
        if roll < 0.75:
            mount = rng.choice(MOUNTS)
            parts = [mount, rng.choice(APIS), _segment(rng, "team", 40), _segment(rng, "app", 25)]
            path = "/".join(parts[: rng.randint(3, 4)])
            tail = rng.random()
            if tail < 0.4:
                path += "/*"
            elif tail < 0.5:
                path += "/+"
            elif tail < 0.55 and not path.endswith("+"):
                path += "*"  # a mid-segment glob (Vault forbids `+*`)
        elif roll < 0.85:
            path = rng.choice(["auth/token/lookup-self", "auth/token/renew-self", "auth/+/login"])
        else:
            path = rng.choice(["sys/policies/acl/+", "sys/mounts/*", "sys/leases/*", "sys/h*"])
        if rng.random() < 0.08:
            caps = frozenset({"deny"})
        else:
            caps = frozenset(rng.sample(CAPS, rng.randint(1, 3)))
        rules.append(PathRule(path=path, capabilities=caps, line=line + 1, policy=f"p{index}"))
    return Policy(name=f"p{index}", rules=tuple(rules))


def generated_invariants(rng: random.Random, count: int) -> list[tuple[str, str, list[str]]]:
    out = []
    for _ in range(count):
        mount = rng.choice(MOUNTS)
        shape = rng.random()
        if shape < 0.3:
            pattern = f"{mount}/{rng.choice(APIS)}/team-{rng.randrange(40)}/*"
        elif shape < 0.55:
            pattern = f"{mount}/+/team-{rng.randrange(40)}/+"
        elif shape < 0.75:
            pattern = f"{mount}/{rng.choice(APIS)}/*"
        elif shape < 0.9:
            pattern = rng.choice(["sys/*", "auth/*", "sys/policies/*"])
        else:
            pattern = "*"
        effect = "deny" if rng.random() < 0.8 else "allow"
        out.append((effect, pattern, rng.sample(CAPS, rng.randint(1, 3))))
    return out


def analyse(principal: Principal, invariants: list[tuple[str, str, list[str]]]) -> int:
    violations = 0
    for effect, pattern, caps in invariants:
        finder = find_granted if effect == "deny" else find_missing
        violations += finder(principal, pattern, caps) is not None
    return violations


def bench_check() -> None:
    check(None, None)  # warm imports and caches once
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        report = check(None, None)
        times.append(time.perf_counter() - t0)
    cmd = [sys.executable, "-m", "broker", "policy", "check", "--format", "json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "broker", "--help"], capture_output=True, check=False)
    cli_floor = time.perf_counter() - t0
    print("== keybroker policy check, shipped policies (target < 1 s)")
    print(f"  in-process check():           median {statistics.median(times) * 1000:7.1f} ms "
          f"(passed={report.passed}, {report.invariants_checked} invariants, "
          f"{len(report.rules)} rules)")
    print(f"  whole command (fresh python): {wall * 1000:7.1f} ms, exit {proc.returncode}; "
          f"`keybroker --help` alone {cli_floor * 1000:.1f} ms")


def bench_generated(seed: int) -> None:
    rng = random.Random(seed)
    policies = [generated_policy(rng, i) for i in range(1000)]
    invariants = generated_invariants(rng, 100)
    print("== exact analysis, 1,000 generated policies x 100 invariants (target < 10 s)")

    t0 = time.perf_counter()
    principals = [Principal(p.name, [p]) for p in policies]
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    violations = sum(analyse(p, invariants) for p in principals)
    each_s = time.perf_counter() - t0
    print(f"  (a) one principal per policy: {len(principals) * len(invariants):,} analyses in "
          f"{each_s:.2f} s (+ {compile_s:.2f} s compiling 1,000 ACLs); "
          f"{violations:,} answered with a counterexample")

    t0 = time.perf_counter()
    big = Principal("all", policies)
    compile_big = time.perf_counter() - t0
    t0 = time.perf_counter()
    big_violations = analyse(big, invariants)
    big_s = time.perf_counter() - t0
    reps = sum(1 for _, pattern, _ in invariants for _ in big.paths(pattern))
    print(f"  (b) one principal, all 1,000 policies ({sum(len(p.rules) for p in policies):,} "
          f"stanzas): 100 analyses in {big_s:.2f} s (+ {compile_big:.2f} s compiling); "
          f"{big_violations} with a counterexample; {reps:,} representative paths in total")

    # Baseline: the evaluator alone deciding as many requests as (b) enumerated.
    sample = [p for _, pattern, _ in invariants for p in big.paths(pattern)]
    t0 = time.perf_counter()
    for path in sample:
        big.acl.select(path, "read")
    base_s = time.perf_counter() - t0
    print(f"  baseline: {len(sample):,} bare evaluator lookups on the same ACL {base_s:.2f} s; "
          f"analysis (b) / baseline = {big_s / base_s if base_s else float('nan'):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    bench_check()
    bench_generated(args.seed)


if __name__ == "__main__":
    main()
