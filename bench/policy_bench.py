"""Policy-check benchmark: prints figures, asserts nothing (DESIGN.md targets).

1. `keybroker policy check` on the shipped policies (target < 1 s): in-process time
   of `policies.check.check`, and the whole command in a fresh interpreter.
2. Exact analysis of 1,000 generated policies x 100 invariants (target < 10 s), two
   readings: (a) each policy is its own principal (100,000 analyses), (b) one
   principal holding all 1,000 policies (100 analyses over one big ACL).
   Baseline in the same run: the evaluator alone deciding the same number of
   requests, so the ratio shows what the class enumeration costs on top.

3. The whole `keybroker policy check` command on those 1,000 policies (one file each)
   and an invariants file of 1,000 principals (one per policy) x 100 invariants, each
   invariant over every principal (targets: < 3 s with --format json, < 5 s as text).
   Baseline in the same run: `keybroker --help` (interpreter and CLI start-up) and the
   in-process check() of the same inputs (cold answers, collector paused as in the
   command), so the ratios show what start-up, rendering and exit add; then the CPU
   of each phase in-process, and whether each target is met on CPU and on wall time
   (the machine may be shared: CPU is the steadier figure).

Run: .venv/bin/python bench/policy_bench.py [--seed N] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from policies.acl import MergedRule
from policies.analysis import Principal, find_granted, find_missing
from policies.analysis.exact import clear_answer_cache
from policies.check import (
    check,
    check_invariant,
    gc_paused,
    load_inputs,
    reach_entries,
)
from policies.lint import run_lint
from policies.model import PathRule, Policy
from policies.report import render_check

MOUNTS = ["secret", "kv", "exchange-keys"]
APIS = ["data", "metadata", "destroy"]
CAPS = ["read", "list", "create", "update", "delete"]
T = TypeVar("T")


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
    t0 = time.perf_counter()
    check(None, None)  # the first run also pays for parsing caches and lazy imports
    first = time.perf_counter() - t0
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
    print(
        f"  in-process check():           median {statistics.median(times) * 1000:7.1f} ms "
        f"(passed={report.passed}, {report.invariants_checked} invariants, "
        f"{len(report.rules)} rules); first run {first * 1000:.1f} ms"
    )
    print(
        f"  whole command (fresh python): {wall * 1000:7.1f} ms, exit {proc.returncode}; "
        f"`keybroker --help` alone {cli_floor * 1000:.1f} ms"
    )


class CountingPrincipal(Principal):
    """Counts the evaluator questions the analysis asks (for the baseline)."""

    asked = 0

    def may(self, path: str, capability: str) -> tuple[bool, MergedRule | None]:
        CountingPrincipal.asked += 1
        return super().may(path, capability)

    def must(self, path: str, capability: str) -> tuple[bool, MergedRule | None]:
        CountingPrincipal.asked += 1
        return super().must(path, capability)


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """The value of fn(), its wall time and its CPU time (the machine is shared)."""
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - w0, time.process_time() - c0


def bench_generated(seed: int) -> None:
    rng = random.Random(seed)
    policies = [generated_policy(rng, i) for i in range(1000)]
    invariants = generated_invariants(rng, 100)
    print("== exact analysis, 1,000 generated policies x 100 invariants (target < 10 s)")

    principals, compile_s, _ = _timed(lambda: [CountingPrincipal(p.name, [p]) for p in policies])
    CountingPrincipal.asked = 0
    violations, wall, cpu = _timed(lambda: sum(analyse(p, invariants) for p in principals))
    asked_a = CountingPrincipal.asked
    print(
        f"  (a) one principal per policy: {len(principals) * len(invariants):,} analyses in "
        f"{wall:.2f} s wall / {cpu:.2f} s CPU (+ {compile_s:.2f} s compiling 1,000 ACLs); "
        f"{violations:,} with a counterexample; {asked_a:,} evaluator questions"
    )

    big, compile_big, _ = _timed(lambda: CountingPrincipal("all", policies))
    CountingPrincipal.asked = 0
    big_violations, big_wall, big_cpu = _timed(lambda: analyse(big, invariants))
    asked_b = CountingPrincipal.asked
    print(
        f"  (b) one principal, all 1,000 policies ({sum(len(p.rules) for p in policies):,} "
        f"stanzas): 100 analyses in {big_wall:.2f} s wall / {big_cpu:.2f} s CPU "
        f"(+ {compile_big:.2f} s compiling); {big_violations} with a counterexample; "
        f"{asked_b:,} evaluator questions"
    )

    # Baseline, same run: the bare evaluator answering as many questions on the big ACL
    # (paths of the same shapes), i.e. the cost of the decisions without the analysis.
    sample = [p for _, pattern, _ in invariants[:10] for p in big.paths(pattern)][:5000]
    n = max(asked_b, 1)
    paths = [sample[i % len(sample)] for i in range(n)]
    _, base_wall, base_cpu = _timed(lambda: [big.acl.select(p, "read") for p in paths])
    print(
        f"  baseline: {n:,} bare ACL.select calls on the big ACL {base_wall:.2f} s wall / "
        f"{base_cpu:.2f} s CPU; analysis (b) / baseline = {big_cpu / base_cpu:.2f}x CPU"
    )


def policy_hcl(policy: Policy) -> str:
    return "".join(
        f'path "{r.path}" {{\n  capabilities = {json.dumps(sorted(r.capabilities))}\n}}\n'
        for r in policy.rules
    )


def write_inputs(directory: Path, seed: int) -> tuple[Path, Path]:
    """1,000 policy files and an invariants file: one principal per policy, 100
    invariants each over every principal."""
    rng = random.Random(seed)
    policies = [generated_policy(rng, i) for i in range(1000)]
    invariants = generated_invariants(rng, 100)
    policy_dir = directory / "policies"
    policy_dir.mkdir()
    for p in policies:
        (policy_dir / f"{p.name}.hcl").write_text(policy_hcl(p))
    names = [p.name for p in policies]
    doc = {
        "principals": {name: [name] for name in names},
        "invariants": [
            {"id": f"inv-{i}", "principal": names, effect: caps, "paths": [pattern]}
            for i, (effect, pattern, caps) in enumerate(invariants)
        ],
    }
    inv_file = directory / "invariants.yaml"
    inv_file.write_text(json.dumps(doc))  # JSON is YAML
    return policy_dir, inv_file


def _command(args: list[str], tree: Path | None = None) -> tuple[float, float, int, int, bytes]:
    """Wall and CPU time (user + system, the machine is shared), exit code, output size
    and output; `tree`: run the code of that checkout instead (e.g. the previous
    commit, `git archive <commit> | tar -x -C <dir>`)."""
    env = None
    if tree is not None:
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'devtools'}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        check=False,
        env=env,
        cwd=tree,  # `-m` puts the working directory first on sys.path
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode, len(proc.stdout), proc.stdout


def _phases(policy_dir: Path, inv_file: Path) -> str:
    """CPU seconds of each phase of the check, in-process and cold, with the collector
    paused as the command pauses it."""
    times: list[tuple[str, float]] = []

    def phase(name: str, fn: Callable[[], T]) -> T:
        value, _, cpu = _timed(fn)
        times.append((name, cpu))
        return value

    with gc_paused():
        clear_answer_cache()
        inputs = phase("load", lambda: load_inputs(policy_dir, inv_file))
        invariants = inputs.invariants.invariants
        phase("invariants", lambda: [check_invariant(inv, inputs) for inv in invariants])
        phase("reach", lambda: reach_entries(inputs))
        members = {name: list(p.policies) for name, p in inputs.principals.items()}
        admins = inputs.invariants.admin_policies()
        compiled = inputs.principals.values()
        phase("lint", lambda: run_lint(inputs.policies, members, admins, compiled=compiled))
        clear_answer_cache()
        report = phase("whole check()", lambda: check(policy_dir, inv_file))
        for fmt in ("json", "text"):
            phase(f"render {fmt}", functools.partial(render_check, report, fmt))
    clear_answer_cache()
    return ", ".join(f"{name} {cpu:.2f}" for name, cpu in times)


TARGETS = {"json": 3.0, "text": 5.0}


def bench_command(seed: int, baseline_tree: Path | None = None) -> None:
    print(
        "== whole `keybroker policy check`, 1,000 policies x 100 invariants over 1,000 "
        "principals (targets: json < 3 s, text < 5 s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir, inv_file = write_inputs(Path(tmp), seed)
        base = ["policy", "check", "--policies", str(policy_dir), "--invariants", str(inv_file)]
        floor_wall, floor, *_ = _command(["--help"])
        clear_answer_cache()  # as cold as a fresh command
        with gc_paused():  # as the command runs it
            t0, c0 = time.perf_counter(), time.process_time()
            report = check(policy_dir, inv_file)
            in_process, in_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"  baseline: `keybroker --help` {floor_wall:.2f} s wall / {floor:.2f} s CPU; "
            "in-process check() (collector paused) "
            f"{in_process:.2f} s wall / {in_cpu:.2f} s CPU ({len(report.findings):,} findings, "
            f"{len(report.reach):,} escalation routes)"
        )
        phases = _phases(policy_dir, inv_file)
        print(f"  in-process phases, s CPU (collector paused, cold): {phases}")
        for fmt in ("json", "sarif", "text"):
            wall, cpu, code, size, out = _command([*base, "--format", fmt])
            target = TARGETS.get(fmt)
            verdict = ""
            if target is not None:
                verdict = f"; target < {target:.0f} s: {'met' if cpu < target else 'MISSED'} on CPU"
                verdict += f", {'met' if wall < target else 'missed'} on wall"
            print(
                f"  --format {fmt:5}: {wall:5.2f} s wall / {cpu:5.2f} s CPU, exit {code}, "
                f"{size / 1e6:.1f} MB; {cpu / in_cpu:.2f}x the in-process check's CPU, "
                f"{(cpu - floor) / in_cpu:.2f}x without start-up{verdict}"
            )
            if baseline_tree is not None:
                old_wall, old_cpu, old_code, _, old_out = _command(
                    [*base, "--format", fmt], baseline_tree
                )
                same = "identical" if (old_code, old_out) == (code, out) else "DIFFERENT"
                print(
                    f"    baseline {baseline_tree}: {old_wall:5.2f} s wall / {old_cpu:5.2f} s "
                    f"CPU; now {old_cpu / cpu:.1f}x less CPU; output {same}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="a checkout of other code (e.g. the previous commit) to run the same "
        "commands with, in the same run, for a before/after on the same machine",
    )
    args = parser.parse_args()
    bench_check()
    bench_generated(args.seed)
    bench_command(args.seed, args.baseline_tree)


if __name__ == "__main__":
    main()
