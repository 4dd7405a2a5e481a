"""`keybroker policy check`: invariants decided exactly, plus the built-in lint rules.

Exit codes (docs/contracts.md §5): 0 pass, 1 violation, 2 error (unreadable or malformed
policies or invariants, with file and line).
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from broker.layout import VaultLayout, build_layout
from policies.acl import ACLError, MergedRule
from policies.analysis import (
    Counterexample,
    GlobShape,
    PatternError,
    Principal,
    find_missing,
    granted_on,
    validate_pattern,
)
from policies.analysis.escalation import Credential, Hop, Reach, chain_text
from policies.analysis.exact import clear_answer_cache
from policies.analysis.routes import routes_for
from policies.hcl import PolicyParseError
from policies.invariants import (
    Invariant,
    Invariants,
    InvariantsError,
    layout_defaults,
    load_invariants,
)
from policies.lint import LintFinding, registry, run_lint
from policies.loader import load_policy_dir
from policies.model import PathRule, Policy
from policies.report import CheckReport, RuleInfo, Violation, render_check
from policies.report.model import InvariantStatus, ReachEntry, ViaStep

EXIT_PASS, EXIT_VIOLATION, EXIT_ERROR = 0, 1, 2


def default_policies_dir() -> Path:
    return Path(str(resources.files("policies").joinpath("vault")))


def display_path(file: str | None, cwd: str | None = None) -> str | None:
    """Paths under the working directory (`cwd`, default: the current one) are shown
    relative to it. A report passes the cwd it read once: os.getcwd() is a system call,
    and a large report names files tens of thousands of times."""
    if file is None:
        return None
    return _display_path(file, cwd or os.getcwd())


@functools.lru_cache(maxsize=4096)
def _display_path(file: str, cwd: str) -> str:
    # Cached: a report names the same few files tens of thousands of times, and
    # resolve() costs a system call per path component.
    path = Path(file)
    try:
        return path.resolve().relative_to(Path(cwd).resolve()).as_posix()
    except ValueError:
        return str(path)


@dataclass
class Inputs:
    policies: list[Policy]
    invariants: Invariants
    principals: dict[str, Principal]
    reach: Reach
    cwd: str = field(default_factory=os.getcwd)  # for display_path, read once
    _closures: dict[str, list[Credential]] = field(default_factory=dict, repr=False)
    # Report text shared by many violations (a large check writes tens of thousands):
    # the blame of one rule for one capability, and the steps of one principal's chain.
    _blames: dict[tuple[int, str, bool], _Blame] = field(default_factory=dict, repr=False)
    _chains: dict[tuple[str, int], _Chain] = field(default_factory=dict, repr=False)

    def closure(self, name: str) -> list[Credential]:
        """Principal `name`'s own credential, then every one it can obtain."""
        found = self._closures.get(name)
        if found is None:
            found = self.reach.closure([p.name for p in self.principals[name].policies])
            self._closures[name] = found
        return found


def load_inputs(
    policies_dir: Path | None, invariants_file: Path | None, layout: VaultLayout | None = None
) -> Inputs:
    """Parse the policy directory and the invariants; compile one ACL per principal.

    `layout` (default: broker/layout.py's `build_layout()`) supplies the principals and
    names the invariants file leaves out, and the token roles and AppRoles whose
    escalation routes the closure follows.

    Raises PolicyParseError, InvariantsError (a principal naming a policy that is not
    in the directory is an error at that principal's line), OSError or ACLError.
    """
    layout = layout or build_layout()
    directory = policies_dir or default_policies_dir()
    if not directory.is_dir():
        raise OSError(f"policies directory not found: {directory}")
    policies = load_policy_dir(directory)
    invariants = load_invariants(invariants_file, layout_defaults(layout))
    by_name = {p.name: p for p in policies}
    principals: dict[str, Principal] = {}
    for name, members in invariants.principals.items():
        missing = [m for m in members if m not in by_name]
        if missing:
            line = invariants.principal_lines[name]
            origin = "" if line else " (declared in broker/layout.py)"
            raise InvariantsError(
                f"principal {name!r}{origin}: no policy {missing[0]!r} in {directory}",
                file=invariants.file,
                line=line,
            )
        principals[name] = Principal(name, [by_name[m] for m in members])
    return Inputs(policies, invariants, principals, Reach(policies, routes_for(layout)))


def _source(rule: MergedRule | None, capability: str, *, deny: bool) -> PathRule | None:
    """The stanza to blame: one that grants `capability` (or denies, for `deny=True`)."""
    if rule is None or not rule.sources:
        return None
    for stanza in rule.sources:
        if deny and stanza.is_deny:
            return stanza
        if not deny and not stanza.is_deny and capability in stanza.capabilities:
            return stanza
    return rule.sources[0]


def _describe(stanza: PathRule, cwd: str) -> str:
    return f'"{stanza.path}" ({stanza.policy}, {display_path(stanza.file, cwd)}:{stanza.line})'


@dataclass(frozen=True)
class _Blame:
    stanza: PathRule | None  # None: no rule applies (or root)
    why: str  # full sentence part, with file:line
    short: str  # for the text table


def _blame_granted(ce: Counterexample, cwd: str) -> _Blame:
    """A `deny` invariant failed: blame the stanza that grants the capability there."""
    stanza = _source(ce.rule, ce.capability, deny=False)
    if stanza is None:
        return _Blame(None, "root policy", "root policy")
    return _Blame(
        stanza,
        f"rule {_describe(stanza, cwd)} applies there",
        f'"{stanza.path}" grants {ce.capability} there',
    )


def _blame_missing(ce: Counterexample, cwd: str) -> _Blame:
    """An `allow` invariant failed: blame the stanza that applies and refuses, if any."""
    if ce.rule is None:
        return _Blame(None, "no rule matches it", "no rule matches it")
    if ce.rule.is_deny:
        stanza = _source(ce.rule, ce.capability, deny=True)
        assert stanza is not None
        why = f"rule {_describe(stanza, cwd)} denies it"
        return _Blame(stanza, why, f'"{stanza.path}" denies it')
    stanza = ce.rule.sources[0]
    held = ", ".join(sorted(ce.rule.capabilities))
    return _Blame(
        stanza,
        f"rule {_describe(stanza, cwd)} applies there and grants [{held}] "
        "(or needs parameters or wrapping)",
        f'"{stanza.path}" applies there: [{held}]',
    )


@dataclass(frozen=True)
class _Chain:
    steps: tuple[ViaStep, ...]
    text: str  # without the final request
    docs: str  # the Vault documents of its edges


def _blame(ce: Counterexample, deny: bool, inputs: Inputs) -> _Blame:
    """`_blame_granted` (deny invariants) or `_blame_missing`, once per rule."""
    key = (id(ce.rule), ce.capability, deny)
    found = inputs._blames.get(key)
    if found is None:
        found = (_blame_granted if deny else _blame_missing)(ce, inputs.cwd)
        inputs._blames[key] = found
    return found


def _chain(who: str, credential: Credential, inputs: Inputs) -> _Chain:
    key = (who, id(credential))
    found = inputs._chains.get(key)
    if found is None:
        via = credential.via
        found = _Chain(
            steps=via_steps(who, via, inputs.cwd),
            text=chain_text(who, via),
            docs="; ".join(dict.fromkeys(hop.route.doc for hop in via)),
        )
        inputs._chains[key] = found
    return found


def via_steps(principal: str, via: Sequence[Hop], cwd: str | None = None) -> tuple[ViaStep, ...]:
    steps = []
    holder = principal
    for hop in via:
        stanza = hop.stanza
        gains = hop.route.gains
        steps.append(
            ViaStep(
                kind=hop.route.kind,
                edge=hop.route.label,
                holder=holder,
                capability=hop.capability,
                path=hop.path,
                policy=stanza.policy if stanza else None,
                file=display_path(stanza.file, cwd) if stanza else None,
                line=stanza.line if stanza else None,
                gains=gains,
                doc=hop.route.doc,
                notes=hop.route.notes,
            )
        )
        holder = "admin-equivalent" if gains is None else ", ".join(gains)
    return tuple(steps)


def _deny_counterexample(
    inv: Invariant, who: str, shape: GlobShape, inputs: Inputs
) -> tuple[Counterexample, Credential] | None:
    """The first credential of the principal's closure (its own token first, then the
    shortest chains) that holds a denied capability on the pattern."""
    own = inputs.principals[who]
    for credential in inputs.closure(who):
        principal = own if not credential.via else inputs.reach.principal(credential)
        ce = granted_on(principal, shape, inv.capabilities, inv.excepts)
        if ce is not None:
            return ce, credential
    return None


def check_invariant(inv: Invariant, inputs: Inputs) -> list[Violation]:
    """One violation per (principal, pattern) that fails, with its counterexample.

    `deny` invariants are decided over the principal's effective reach (every token,
    secret-id or policy it can create, docs/policy-checks.md); `allow` invariants over
    its own token."""
    out: list[Violation] = []
    shapes = {pattern: validate_pattern(pattern) for pattern in inv.paths}
    deny = inv.effect == "deny"
    verb, expected = ("can", "denied") if deny else ("cannot", "allowed")
    suffix = f". Invariant: {inv.description}" if inv.description else ""
    for who in inv.principals:
        for pattern in inv.paths:
            credential: Credential | None = None
            if deny:
                found = _deny_counterexample(inv, who, shapes[pattern], inputs)
                if found is None:
                    continue
                ce, credential = found
            else:
                principal = inputs.principals[who]
                missing = find_missing(principal, pattern, inv.capabilities, inv.excepts)
                if missing is None:
                    continue
                ce = missing
            blame = _blame(ce, deny, inputs)
            stanza = blame.stanza
            chain = ""
            steps: tuple[ViaStep, ...] = ()
            if credential is not None and credential.via:
                # Blame the principal's own stanza that opens the chain: that is the
                # line to change.
                known = _chain(who, credential, inputs)
                steps = known.steps
                chain = f"{known.text} -> {ce.capability} {ce.path}"
                stanza = credential.via[0].stanza
                how = f"through {chain} (edges: {known.docs})"
                message = (
                    f"{who} {verb} {ce.capability} {ce.path} ({pattern} must be {expected}) {how}"
                )
                detail = f"must be {expected} ({pattern}); via {chain}"
            else:
                message = (
                    f"{who} {verb} {ce.capability} {ce.path} ({pattern} must be {expected}): "
                    f"{blame.why}"
                )
                detail = f"must be {expected} ({pattern}); {blame.short}"
            out.append(
                Violation(
                    id=inv.id,
                    principal=who,
                    capability=ce.capability,
                    path=ce.path,
                    policy=stanza.policy if stanza else None,
                    file=display_path(stanza.file if stanza else inv.file, inputs.cwd),
                    line=stanza.line if stanza else inv.line,
                    message=message + suffix,
                    detail=detail,
                    via=steps,
                    chain=chain,
                )
            )
    return out


def reach_entries(inputs: Inputs) -> list[ReachEntry]:
    """Every credential each principal can obtain beyond its own token."""
    out = []
    for name in inputs.principals:
        for credential in inputs.closure(name)[1:]:
            out.append(
                ReachEntry(
                    principal=name,
                    credential=credential.label,
                    chain=chain_text(name, credential.via),
                    via=via_steps(name, credential.via, inputs.cwd),
                )
            )
    return out


def _lint_violation(finding: LintFinding, cwd: str) -> Violation:
    rule = registry.get(finding.rule_id)
    return Violation(
        id=finding.rule_id,
        principal=finding.principal,
        capability=finding.capability,
        path=finding.path,
        policy=finding.stanza.policy or None,
        file=display_path(finding.stanza.file, cwd),
        line=finding.stanza.line,
        message=f"{rule.name}: {finding.message}",
        level=rule.severity,
        detail=finding.message,
    )


def statement(inv: Invariant) -> str:
    """The invariant in one sentence, e.g. `site can never read on a/* (except a/b)`."""
    verb = "can never" if inv.effect == "deny" else "can always"
    text = (
        f"{', '.join(inv.principals)} {verb} {', '.join(inv.capabilities)} "
        f"on {', '.join(inv.paths)}"
    )
    if inv.excepts:
        text += f" (except {', '.join(inv.excepts)})"
    return text


def rule_catalogue(invariants: Sequence[Invariant]) -> list[RuleInfo]:
    rules = [RuleInfo(r.id, r.name, r.rationale, r.severity) for r in registry.rules]
    for inv in invariants:
        text = statement(inv)
        rules.append(RuleInfo(inv.id, inv.description or text, text, "error"))
    return rules


def check(policies_dir: Path | None, invariants_file: Path | None) -> CheckReport:
    inputs = load_inputs(policies_dir, invariants_file)
    report = CheckReport(
        rules=rule_catalogue(inputs.invariants.invariants),
        policies=[p.name for p in inputs.policies],
        invariants_file=display_path(inputs.invariants.file, inputs.cwd),
        invariants_checked=len(inputs.invariants.invariants),
    )
    for inv in inputs.invariants.invariants:
        found = check_invariant(inv, inputs)
        report.invariant_results.append(InvariantStatus(inv.id, statement(inv), found))
        report.findings.extend(found)
    report.reach = reach_entries(inputs)
    principal_policies = {n: list(p.policies) for n, p in inputs.principals.items()}
    lint = run_lint(
        inputs.policies,
        principal_policies,
        inputs.invariants.admin_policies(),
        compiled=inputs.principals.values(),
    )
    report.findings.extend(_lint_violation(f, inputs.cwd) for f in lint)
    return report


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one command. A large check allocates
    hundreds of thousands of objects that live until it ends (ACLs, answers, report
    entries) and makes few cycles, so the collector's passes over them found nothing
    and cost a quarter of the command (docs/policy-checks.md, Performance). Release
    the big objects before the block ends: the first collection after it walks every
    object still alive that was allocated inside it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _checked(
    policies_dir: Path | None, invariants_file: Path | None, output_format: str
) -> tuple[str, bool]:
    """The rendered report and whether it passed; the report itself dies on return."""
    report = check(policies_dir, invariants_file)
    return render_check(report, output_format), report.passed


def run_check(policies_dir: Path | None, invariants_file: Path | None, output_format: str) -> int:
    with gc_paused():
        try:
            output, passed = _checked(policies_dir, invariants_file, output_format)
        except (PolicyParseError, InvariantsError, PatternError, ACLError, OSError) as exc:
            print(f"keybroker policy check: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        finally:
            clear_answer_cache()  # a command's answers die with it, not in exit's GC pass
    sys.stdout.write(output)
    if not sys.stdout.isatty():
        sys.stdout.flush()
    return EXIT_PASS if passed else EXIT_VIOLATION
