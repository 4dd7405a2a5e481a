"""The policy pack, in-process: it passes the shipped stacks and fails each seeded mistake.

Stacks come from the mocked program run (tests/infra/harness.py); each mistake is a
small edit of one resource's properties, as a wrong program or a hand-written stack
would produce them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, PolicyResource

from policies.pack import props as p
from policies.pack.rules import POLICIES
from tests.infra.harness import run_program, stack_config
from tests.infra.pack_bridge import evaluate, mandatory, resources_of

# prod-1-host: the prod stack on the deploying machine's one engine.
_SCENARIOS = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "prod-1-host": ("prod", {"dockerHosts": ""}),
}


@cache
def _run(stack: str):
    name, changes = _SCENARIOS[stack]
    return run_program(name, {**stack_config(name), **changes})


def resources(stack: str) -> list[PolicyResource]:
    return resources_of(_run(stack))  # fresh, mutable copies


def _role(res: list[PolicyResource], role: str) -> PolicyResource:
    return next(r for r in res if r.resource_type == p.CONTAINER and p.role(r.props) == role)


def _vault_config(res: list[PolicyResource]) -> dict[str, Any]:
    return next(r for r in res if r.resource_type == p.VAULT_CONFIG).props["layout"]


def _hcl_edit(res: list[PolicyResource], old: str, new: str) -> None:
    for upload in _role(res, "vault").props["uploads"]:
        if upload["file"].endswith(".hcl"):
            assert old in upload["content"]
            upload["content"] = upload["content"].replace(old, new)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_pass_every_rule(stack: str) -> None:
    violations = evaluate(resources(stack))
    assert violations == [], [(v.policy, v.message) for v in violations]


def test_prod_on_one_host_passes_with_a_warning_only() -> None:
    violations = evaluate(resources("prod-1-host"))
    assert [(v.policy, v.level) for v in violations] == [
        ("vault-ha-in-prod", EnforcementLevel.ADVISORY)
    ]
    assert "dies with it" in violations[0].message


def test_every_rule_has_a_remediation_and_the_mandatory_set_is_complete() -> None:
    for policy in POLICIES:
        assert policy.remediation_steps and policy.description
    assert {x.name for x in POLICIES if x.enforcement_level == EnforcementLevel.MANDATORY} == {
        "vault-no-dev-mode",
        "vault-tls",
        "vault-audit-devices",
        "no-plain-secret-env",
        "images-pinned-by-digest",
        "broker-hardened",
        "dev-ports-loopback",
        "site-token-ttl-capped-cidr-bound",
        "site-cannot-reach-robot-keys",
        "vault-telemetry",
        "vault-nodes-spread",
        "broker-replicas-in-prod",
    }


def _set(role: str, key: str, value: Any) -> Callable[[list[PolicyResource]], None]:
    def edit(res: list[PolicyResource]) -> None:
        res_props = _role(res, role).props
        if value is None:
            res_props.pop(key, None)
        else:
            res_props[key] = value

    return edit


def _add_env(role: str, entry: str) -> Callable[[list[PolicyResource]], None]:
    return lambda res: _role(res, role).props["envs"].append(entry)


def _role_field(key: str, value: Any) -> Callable[[list[PolicyResource]], None]:
    return lambda res: _vault_config(res)["site_token_role"].__setitem__(key, value)


def _site_policy_reaches_robot(res: list[PolicyResource]) -> None:
    layout = _vault_config(res)
    layout["policies"]["keybroker-site-read"] += (
        '\npath "exchange-keys/+/robot/*" {\n  capabilities = ["list"]\n}\n'
    )


def _robot_policy_reaches_site(res: list[PolicyResource]) -> None:
    layout = _vault_config(res)
    layout["policies"]["keybroker-robot-read"] += (
        '\npath "exchange-keys/data/*" {\n  capabilities = ["read"]\n}\n'
    )


def _one_audit_device(res: list[PolicyResource]) -> None:
    _vault_config(res)["audit_devices"] = _vault_config(res)["audit_devices"][:1]


def _drop_vault_config(res: list[PolicyResource]) -> None:
    res[:] = [r for r in res if r.resource_type != p.VAULT_CONFIG]


def _unpinned_remote_image(res: list[PolicyResource]) -> None:
    image = next(r for r in res if r.resource_type == p.REMOTE_IMAGE and "build" not in r.props)
    image.props["name"] = "hashicorp/vault:latest"


def _drop_revocation(res: list[PolicyResource]) -> None:
    res[:] = [r for r in res if r.resource_type != p.ROOT_REVOCATION]


def _single_prod_node(res: list[PolicyResource]) -> None:
    vaults = [r for r in res if r.resource_type == p.CONTAINER and p.role(r.props) == "vault"]
    res[:] = [r for r in res if r not in vaults[1:]]


def _two_nodes_on_one_host(res: list[PolicyResource]) -> None:
    vaults = [r for r in res if r.resource_type == p.CONTAINER and p.role(r.props) == "vault"]
    for label in vaults[1].props["labels"]:
        if label["label"] == "keybroker.host":
            label["value"] = p.host(vaults[0].props)


def _one_broker(res: list[PolicyResource]) -> None:
    brokers = [r for r in res if r.resource_type == p.CONTAINER and p.role(r.props) == "broker"]
    res[:] = [r for r in res if r not in brokers[1:]]


def _unlabelled_dev_vault(res: list[PolicyResource]) -> None:
    vault = _role(res, "vault")
    vault.props["labels"] = []
    vault.props.pop("command")


MISTAKES: list[tuple[str, str, Callable[[list[PolicyResource]], None]]] = [
    # (stack, rule expected to fire, the mistake)
    ("dev", "vault-no-dev-mode", _set("vault", "command", None)),
    ("dev", "vault-no-dev-mode", _set("vault", "command", ["server", "-dev"])),
    ("dev", "vault-no-dev-mode", _add_env("vault", "VAULT_DEV_LISTEN_ADDRESS=0.0.0.0:8200")),
    ("dev", "vault-no-dev-mode", _unlabelled_dev_vault),
    (
        "dev",
        "vault-tls",
        lambda res: _hcl_edit(res, 'tls_min_version = "tls12"', 'tls_disable = "true"'),
    ),
    (
        "prod",
        "vault-tls",
        lambda res: _hcl_edit(res, 'tls_min_version = "tls12"', 'tls_min_version = "tls10"'),
    ),
    ("dev", "vault-tls", lambda res: _hcl_edit(res, "  tls_key_file", "  # tls_key_file")),
    ("dev", "vault-tls", _set("vault", "uploads", [])),
    ("dev", "vault-tls", _add_env("vault", "VAULT_LOCAL_CONFIG={}")),
    ("prod", "vault-audit-devices", _one_audit_device),
    ("prod", "vault-audit-devices", _drop_vault_config),
    ("dev", "no-plain-secret-env", _add_env("broker", "KEYBROKER_VAULT_SECRET_ID=abc")),
    ("dev", "no-plain-secret-env", _add_env("vault", "VAULT_TOKEN=x")),
    ("prod", "no-plain-secret-env", _add_env("vault", "AWS_SECRET_ACCESS_KEY=x")),
    ("prod", "no-plain-secret-env", _add_env("broker", "SOME_SETTING=hvs.CAESIabc")),
    ("dev", "images-pinned-by-digest", _set("vault", "image", "hashicorp/vault:1.21")),
    ("dev", "images-pinned-by-digest", _set("broker", "image", "keybroker:latest")),
    ("prod", "images-pinned-by-digest", _unpinned_remote_image),
    ("dev", "broker-hardened", _set("broker", "user", None)),
    ("dev", "broker-hardened", _set("broker", "user", "0:0")),
    ("dev", "broker-hardened", _set("broker", "readOnly", False)),
    ("dev", "broker-hardened", _set("broker", "securityOpts", [])),
    ("dev", "broker-hardened", _set("broker", "capabilities", {"drops": ["NET_RAW"]})),
    (
        "dev",
        "broker-hardened",
        _set("broker", "capabilities", {"drops": ["ALL"], "adds": ["NET_ADMIN"]}),
    ),
    ("dev", "broker-hardened", _set("broker", "memory", None)),
    ("dev", "broker-hardened", _set("broker", "cpus", None)),
    ("dev", "broker-hardened", _set("broker", "healthcheck", None)),
    ("prod", "broker-hardened", _set("broker", "privileged", True)),
    ("dev", "dev-ports-loopback", _set("broker", "ports", [{"internal": 8080, "external": 8080}])),
    ("dev", "dev-ports-loopback", _set("vault", "ports", [{"internal": 8200, "ip": "0.0.0.0"}])),
    ("dev", "dev-ports-loopback", _set("broker", "publishAllPorts", True)),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("explicit_max_ttl", 86400)),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("explicit_max_ttl", 0)),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("bound_cidrs", [])),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("bound_cidrs", ["0.0.0.0/0"])),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("token_type", "service")),
    ("prod", "site-token-ttl-capped-cidr-bound", _role_field("default_ttl", 3600)),
    (
        "prod",
        "site-token-ttl-capped-cidr-bound",
        _add_env("broker", "KEYBROKER_SITE_TOKEN_MAX_TTL=24h"),
    ),
    ("dev", "site-token-ttl-capped-cidr-bound", _add_env("broker", "KEYBROKER_SITE_TOKEN_TTL=1h")),
    ("prod", "site-cannot-reach-robot-keys", _site_policy_reaches_robot),
    (
        "dev",
        "site-cannot-reach-robot-keys",
        _role_field("allowed_policies", ["keybroker-robot-read"]),
    ),
    ("dev", "site-cannot-reach-robot-keys", _role_field("allowed_policies", ["not-in-layout"])),
    # advisory rules
    ("dev", "robot-cannot-reach-site-keys", _robot_policy_reaches_site),
    ("dev", "vault-auto-unseal", lambda res: _hcl_edit(res, 'seal "awskms"', 'telemetry "x"')),
    ("dev", "vault-mlock-explicit", lambda res: _hcl_edit(res, "disable_mlock = true", "")),
    ("prod", "containers-not-privileged", _set("vault", "pidMode", "host")),
    ("prod", "containers-restart", _set("vault", "restart", "no")),
    ("prod", "no-wildcard-ports", _set("broker", "ports", [{"internal": 8080, "ip": "0.0.0.0"}])),
    ("prod", "broker-vault-tls", _add_env("broker", "KEYBROKER_VAULT_ADDR=http://vault:8200")),
    ("prod", "vault-ha-in-prod", _single_prod_node),
    ("prod", "root-token-revoked-in-prod", _drop_revocation),
    # issue 14
    ("dev", "vault-telemetry", lambda res: _hcl_edit(res, "telemetry {", "telemetry_off {")),
    (
        "prod",
        "vault-telemetry",
        lambda res: _hcl_edit(
            res, 'prometheus_retention_time = "86400s"', 'prometheus_retention_time = "0"'
        ),
    ),
    ("prod", "vault-nodes-spread", _two_nodes_on_one_host),
    ("prod", "broker-replicas-in-prod", _one_broker),
    ("prod-1-host", "broker-replicas-in-prod", _one_broker),
    (
        "dev",
        "vault-auto-unseal",
        lambda res: _hcl_edit(res, "  region", '  disabled = "true"\n  region'),
    ),
]


@pytest.mark.parametrize(
    ("stack", "rule", "mistake"),
    MISTAKES,
    ids=[f"{s}-{r}-{i}" for i, (s, r, _) in enumerate(MISTAKES)],
)
def test_seeded_mistake_is_caught(stack: str, rule: str, mistake: Callable) -> None:
    res = resources(stack)
    mistake(res)
    violations = evaluate(res)
    fired = {v.policy for v in violations}
    assert rule in fired, fired
    hit = next(v for v in violations if v.policy == rule)
    assert "Remediation:" in hit.message
    level = next(x.enforcement_level for x in POLICIES if x.name == rule)
    assert (hit in mandatory(violations)) == (level == EnforcementLevel.MANDATORY)


def test_every_rule_is_exercised_by_a_mistake() -> None:
    assert {rule for _, rule, _ in MISTAKES} == {x.name for x in POLICIES}


def test_messages_never_echo_secret_values() -> None:
    res = resources("dev")
    _add_env("broker", "KEYBROKER_VAULT_TOKEN=hvs.CANARY-pack-echo")(res)
    _add_env("vault", "NOTE=hvs.CANARY-pack-echo-2")(res)
    messages = json.dumps([v.message for v in evaluate(res)])
    assert "KEYBROKER_VAULT_TOKEN" in messages and "CANARY" not in messages


def test_ttl_cap_is_configurable() -> None:
    res = resources("prod")
    cfg = {"site-token-ttl-capped-cidr-bound": {"maxSiteTokenTtlSeconds": 600}}
    assert "site-token-ttl-capped-cidr-bound" in {v.policy for v in evaluate(res, cfg)}


def test_reachability_violation_names_a_concrete_path_and_the_policy_line() -> None:
    res = resources("prod")
    _site_policy_reaches_robot(res)
    (hit,) = [v for v in evaluate(res) if v.policy == "site-cannot-reach-robot-keys"]
    assert "Site tokens may list exchange-keys/" in hit.message
    assert "/robot/" in hit.message and "keybroker-site-read line" in hit.message


def test_through_crossguards_own_analyzer() -> None:
    """The pack as the CLI runs it: pulumi-policy's analyzer servicer (a private API,
    pinned by pulumi-policy 1.21, docs/facts/pulumi.md §4 (b)) gets the engine's raw
    inputs, secrets still wrapped, and maps enforcement levels itself."""
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import analyzer_pb2
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    from tests.infra.harness import CANARY_WRAP_TOKEN

    (broker,) = _run("dev").containers("broker")
    servicer = _PolicyAnalyzerServicer("keybroker", "0.1.0", POLICIES, EnforcementLevel.ADVISORY)

    def analyze(inputs: dict[str, Any]) -> list[Any]:
        props = struct_pb2.Struct()
        props.update(inputs)
        request = analyzer_pb2.AnalyzeRequest(
            type=broker.typ, properties=props, urn=f"urn:x::{broker.name}", name=broker.name
        )
        return list(servicer.Analyze(request, None).diagnostics)

    assert analyze(dict(broker.inputs)) == []
    seeded = {**broker.inputs, "envs": [*broker.inputs["envs"], "KEYBROKER_VAULT_TOKEN=t"]}
    (diag,) = analyze(seeded)
    assert diag.policyName == "no-plain-secret-env"
    assert diag.enforcementLevel == analyzer_pb2.EnforcementLevel.Value("MANDATORY")
    assert CANARY_WRAP_TOKEN not in diag.message
