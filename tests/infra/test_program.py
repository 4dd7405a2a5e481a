"""The whole Pulumi program under mocks, for the shipped dev and prod stacks.

Each resource's security-relevant properties are asserted on the inputs the engine
would receive (docs/facts/pulumi.md §1), with preview off so every output resolves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from broker.layout import build_layout, policy_text
from infra import vault_hcl
from infra.config import parse_config
from infra.layout_props import layout_to_props
from policies.hcl import parse_document
from policies.pack import props as pack_props
from tests.infra.harness import (
    CANARY_AWS_SECRET,
    CANARY_TLS_KEY,
    CANARY_WRAP_TOKEN,
    DYN,
    REGISTRY_IMAGE,
    REPO,
    ProgramRun,
    plain_strings,
    registry_digest,
    run_program,
    stack_config,
    unwrap,
)

CANARY_HMAC = "CANARY-audit-hmac-key-9d2e"
CONTAINER = "docker:index/container:Container"
SECRET_SIG = "4dabf18193072939515e22adb298388d"

# The shipped stacks, plus prod on the deploying machine's one engine.
SCENARIOS: dict[str, tuple[str, dict[str, str | None]]] = {
    "dev": ("dev", {}),
    "prod-1-host": ("prod", {"dockerHosts": None}),
    "prod": ("prod", {}),  # three hosts, as shipped
}
STACKS = list(SCENARIOS)


def scenario_config(scenario: str) -> dict[str, str]:
    stack, changes = SCENARIOS[scenario]
    config: dict[str, str | None] = {**stack_config(stack), **changes}
    return {k: v for k, v in config.items() if v is not None}


@cache
def shipped(scenario: str) -> ProgramRun:
    stack = SCENARIOS[scenario][0]
    return run_program(stack, scenario_config(scenario), {"auditHmacKey": CANARY_HMAC})


def _hosts(scenario: str) -> int:
    return 3 if scenario == "prod" else 1


def _envs(res) -> dict[str, str]:
    return pack_props.envs(unwrap(res.inputs))


def _upload(res, file: str) -> dict:
    for item in unwrap(res.inputs)["uploads"]:
        if item["file"] == file:
            return item
    raise AssertionError(f"no upload {file}")


@pytest.mark.parametrize("stack", STACKS)
def test_inventory(stack: str) -> None:
    run = shipped(stack)
    nodes = 1 if stack == "dev" else 3
    replicas = 1 if stack == "dev" else 2
    assert len(run.containers("vault")) == nodes
    assert len(run.containers("broker")) == replicas
    assert len(run.containers("broker-seed")) == replicas
    assert len(run.containers("broker-lb")) == (0 if stack == "dev" else 1)
    assert len(run.of_type("docker:index/volume:Volume")) == 2 * nodes + replicas
    hosts = _hosts(stack)
    assert len(run.of_type("pulumi:providers:docker")) == (3 if hosts == 3 else 0)
    networks = [r.inputs for r in run.of_type("docker:index/network:Network")]
    assert len(networks) == 2 * hosts  # an internal and an edge network per host
    prefix = f"keybroker-{SCENARIOS[stack][0]}"
    assert {n["name"]: n["internal"] for n in networks} == {
        f"{prefix}-internal": True,
        f"{prefix}-edge": False,
    }
    for token in ("KmsKey", "TlsBundle", "VaultInit", "VaultConfig", "BrokerTokenIssuer"):
        run.one(DYN + token)
    assert len(run.of_type(DYN + "BrokerToken")) == replicas  # one credential per replica
    revocations = run.of_type(DYN + "RootTokenRevocation")
    assert len(revocations) == (0 if stack == "dev" else 1)


def test_three_hosts_one_vault_node_and_engine_each() -> None:
    run = shipped("prod")
    placed = {
        unwrap(r.inputs)["name"]: pack_props.labels(unwrap(r.inputs))["keybroker.host"]
        for r in run.of_type(CONTAINER)
    }
    assert [placed[f"keybroker-prod-vault-{i}"] for i in range(3)] == [
        "vault-a",
        "vault-b",
        "vault-c",
    ]
    assert [placed[f"keybroker-prod-broker-{i}"] for i in range(2)] == ["vault-a", "vault-b"]
    assert placed["keybroker-prod-broker-lb"] == "vault-a"
    providers = {r.name: r.inputs["host"] for r in run.of_type("pulumi:providers:docker")}
    assert providers == {
        f"docker-{h}": f"ssh://deploy@10.0.{i + 1}.11"
        for i, h in enumerate(("vault-a", "vault-b", "vault-c"))
    }


def test_three_hosts_raft_over_published_tls_ports() -> None:
    run = shipped("prod")
    vaults = sorted(run.containers("vault"), key=lambda r: r.name)
    for index, res in enumerate(vaults):
        props = unwrap(res.inputs)
        address = f"10.0.{index + 1}.11"
        ports = {(p["internal"], p["external"], p["ip"]) for p in props["ports"]}
        assert ports == {(8200, 8200 + index, address), (8201, 8300 + index, address)}
        hcl = _upload(res, "/vault/config/vault.hcl")["content"]
        assert pack_props.attribute(hcl, "api_addr") == f"https://{address}:{8200 + index}"
        assert pack_props.attribute(hcl, "cluster_addr") == f"https://{address}:{8300 + index}"
        (storage,) = pack_props.blocks(hcl, "storage")
        leaders = [j["leader_api_addr"] for j in storage["retry_join"]]
        assert leaders == [f"https://10.0.{i + 1}.11:{8200 + i}" for i in range(3) if i != index]
        (listener,) = pack_props.blocks(hcl, "listener")
        assert listener["tls_cert_file"] and "tls_disable" not in listener
    # Node certificates name their host's address, which the peers dial.
    (tls,) = run.of_type(DYN + "TlsBundle")
    for index, names in enumerate(tls.inputs["nodes"]):
        assert f"10.0.{index + 1}.11" in names and f"keybroker-prod-vault-{index}" in names


def test_load_balancer_fronts_every_replica_on_readiness() -> None:
    run = shipped("prod")
    (lb,) = run.containers("broker-lb")
    props = unwrap(lb.inputs)
    config = _upload(lb, "/usr/local/etc/haproxy/haproxy.cfg")["content"]
    assert "option httpchk GET /readyz" in config
    # broker-0 shares the balancer's host (its edge network); broker-1 is on vault-b.
    assert "server keybroker-prod-broker-0 keybroker-prod-broker-0:8080" in config
    assert "server keybroker-prod-broker-1 10.0.2.11:8082" in config
    assert [(p["external"], p["ip"]) for p in props["ports"]] == [(8080, "10.0.1.11")]
    assert props["image"] == f"haproxy:3.0@{registry_digest('haproxy:3.0')}"
    assert props["capabilities"] == {"drops": ["ALL"]}
    assert run.outputs["broker_url"] == ("http://10.0.1.11:8080", False)


def test_the_platforms_own_load_balancer_instead() -> None:
    run = run_program("prod", {**stack_config("prod"), "loadBalancer": "false"}, {})
    assert run.containers("broker-lb") == []
    published = [
        [(p["ip"], p["external"]) for p in unwrap(b.inputs)["ports"]]
        for b in sorted(run.containers("broker"), key=lambda r: r.name)
    ]
    assert published == [[("10.0.1.11", 8080)], [("10.0.2.11", 8081)]]


def test_replicas_share_nothing_but_vault() -> None:
    for scenario in ("prod", "prod-1-host"):
        run = shipped(scenario)
        brokers = run.containers("broker")
        volumes = [unwrap(b.inputs)["volumes"][0]["volumeName"] for b in brokers]
        assert len(set(volumes)) == len(brokers)
        tokens = run.of_type(DYN + "BrokerToken")
        assert len({t.inputs["replica"] for t in tokens}) == len(brokers)
        seeds = run.containers("broker-seed")
        wrapped = {_upload(s, "/run/keybroker/credential.wrap")["content"] for s in seeds}
        assert len(wrapped) == len(brokers)  # each replica its own token


def test_vault_image_is_resolved_from_the_registry_by_tag() -> None:
    """Issue 14: no digest typed into a stack file; the registry decides at deploy time."""
    for stack in ("dev", "prod"):
        text = (REPO / f"Pulumi.{stack}.yaml").read_text()
        assert not re.search(r"@sha256:[0-9a-f]{64}", text)
    run = shipped("dev")
    tag = stack_config("dev")["vaultImage"]
    assert (REGISTRY_IMAGE, tag) in [(t, a.get("name")) for t, a in run.calls]
    (vault,) = run.containers("vault")
    assert unwrap(vault.inputs)["image"] == f"{tag}@{registry_digest(tag)}"
    assert run.outputs["vault_image"][0] == f"{tag}@{registry_digest(tag)}"
    pulled = [
        r for r in run.of_type("docker:index/remoteImage:RemoteImage") if "build" not in r.inputs
    ]
    assert unwrap(pulled[0].inputs)["name"] == f"{tag}@{registry_digest(tag)}"


def test_across_hosts_the_registry_is_asked_through_a_hosts_provider() -> None:
    run = shipped("prod")
    providers = [
        p for (t, _), p in zip(run.calls, run.call_providers, strict=True) if t == REGISTRY_IMAGE
    ]
    assert len(providers) == 2  # Vault and HAProxy
    assert all("docker-vault-a" in p for p in providers)


def test_a_digest_in_config_is_used_as_is() -> None:
    pinned = "hashicorp/vault@sha256:" + "ab" * 32
    run = run_program("dev", {**stack_config("dev"), "vaultImage": pinned}, {})
    (vault,) = run.containers("vault")
    assert unwrap(vault.inputs)["image"] == pinned
    assert not [t for t, _ in run.calls if t == REGISTRY_IMAGE]


def test_seal_credentials_reach_vault_as_a_file_its_user_reads() -> None:
    """Issue 14: a bind mount kept the host file's owner and mode (unreadable by uid 100);
    the content is now uploaded, owned by Vault's user, mode 0400, as a secret input."""
    (vault,) = shipped("dev").containers("vault")
    props = unwrap(vault.inputs)
    creds = _upload(vault, "/vault/aws/credentials")
    assert (creds["owner"], creds["group"], creds["permissions"]) == ("100", "1000", "0400")
    assert CANARY_AWS_SECRET in creds["content"]
    assert _envs(vault)["AWS_SHARED_CREDENTIALS_FILE"] == "/vault/aws/credentials"
    assert not any(v.get("hostPath") for v in props["volumes"])  # no bind mount
    assert vault.inputs["uploads"].get(SECRET_SIG)  # the uploads are a secret input
    # With an instance role (prod as shipped), no file and no credential variable.
    for res in shipped("prod").containers("vault"):
        assert "AWS_SHARED_CREDENTIALS_FILE" not in _envs(res)
        assert all(u["file"] != "/vault/aws/credentials" for u in unwrap(res.inputs)["uploads"])


def test_seal_uses_the_in_container_endpoint() -> None:
    config = {
        **stack_config("dev"),
        "awsEndpointUrl": "http://127.0.0.1:5000",
        "awsSealEndpointUrl": "http://172.17.0.1:5000",
    }
    run = run_program("dev", config, {})
    (vault,) = run.containers("vault")
    (seal,) = pack_props.blocks(_upload(vault, "/vault/config/vault.hcl")["content"], "seal")
    assert seal["endpoint"] == "http://172.17.0.1:5000"
    init = unwrap(run.one(DYN + "VaultInit").inputs)
    assert init["endpoint_url"] == "http://127.0.0.1:5000"  # boto3 on the deploying machine


def test_seal_migration_renders_the_old_seal_disabled() -> None:
    run = run_program("dev", {**stack_config("dev"), "sealMigrateToShamir": "true"}, {})
    (vault,) = run.containers("vault")
    (seal,) = pack_props.blocks(_upload(vault, "/vault/config/vault.hcl")["content"], "seal")
    assert seal["disabled"] == "true"
    (normal,) = shipped("dev").containers("vault")
    hcl = _upload(normal, "/vault/config/vault.hcl")["content"]
    assert "disabled" not in pack_props.blocks(hcl, "seal")[0]


@pytest.mark.parametrize("stack", STACKS)
def test_vault_nodes(stack: str) -> None:
    run = shipped(stack)
    cfg = scenario_config(stack)
    kms_arn = run.outputs["kms_key_arn"][0]
    vaults = sorted(run.containers("vault"), key=lambda r: r.name)
    for index, res in enumerate(vaults):
        props = unwrap(res.inputs)
        assert props["command"] == ["server"]  # never the image's `server -dev`
        assert props["image"] == f"{cfg['vaultImage']}@{registry_digest(cfg['vaultImage'])}"
        assert re.search(r"@sha256:[0-9a-f]{64}$", props["image"])
        assert "IPC_LOCK" in props["capabilities"]["adds"]
        assert props["healthcheck"]["tests"] == ["CMD", "vault", "status"]
        assert {v["containerPath"] for v in props["volumes"]} == {"/vault/file", "/vault/logs"}
        assert props["ports"][0]["external"] == 8200 + index
        if _hosts(stack) == 1:
            assert [p["ip"] for p in props["ports"]] == ["127.0.0.1"]
        assert props["memorySwap"] == props["memory"] > 0
        assert props["restart"] == "unless-stopped"
        # The private key goes in as a secret input, never in plain.
        assert res.inputs["uploads"].get("4dabf18193072939515e22adb298388d")
        assert _upload(res, vault_hcl.KEY_FILE)["permissions"] == "0400"
        hcl = _upload(res, "/vault/config/vault.hcl")["content"]
        doc = {tuple(k.value for k in item.keys): item for item in parse_document(hcl).items}
        assert ("disable_mlock",) in doc  # explicit, as Vault 1.20+ requires with Raft
        assert pack_props.attribute(hcl, "disable_mlock") is (cfg["disableMlock"] == "true")
        (listener,) = pack_props.blocks(hcl, "listener")
        assert listener["tls_cert_file"] == vault_hcl.CERT_FILE
        assert "tls_disable" not in listener
        (seal,) = pack_props.blocks(hcl, "seal")
        assert seal["__label__"] == "awskms" and seal["kms_key_id"] == kms_arn
        assert seal["region"] == cfg["awsRegion"]
        assert hcl.count("retry_join") == len(vaults) - 1
        assert "access_key" not in hcl and "secret_key" not in hcl
        telemetry = pack_props.attribute(hcl, "telemetry")
        assert telemetry["prometheus_retention_time"] == "86400s"


def test_dev_has_mlock_disabled_with_no_new_privileges() -> None:
    (vault,) = shipped("dev").containers("vault")
    assert unwrap(vault.inputs)["securityOpts"] == ["no-new-privileges:true"]


@pytest.mark.parametrize("stack", STACKS)
def test_broker_container(stack: str) -> None:
    run = shipped(stack)
    for broker in run.containers("broker"):
        props = unwrap(broker.inputs)
        assert props["user"] == "10001:10001"
        assert props["readOnly"] is True
        assert props["securityOpts"] == ["no-new-privileges:true"]
        assert props["capabilities"] == {"drops": ["ALL"]}
        assert props["memory"] > 0 and float(props["cpus"]) > 0
        assert "healthz" in " ".join(props["healthcheck"]["tests"])
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", props["image"])
        envs = _envs(broker)
        for name in ("KEYBROKER_VAULT_SECRET_ID", "KEYBROKER_VAULT_TOKEN"):
            assert name not in envs
        assert envs["KEYBROKER_VAULT_WRAPPED_CREDENTIAL_FILE"] == "/run/keybroker/credential.wrap"
        assert envs["KEYBROKER_VAULT_TOKEN_SINK_FILE"] == "/run/keybroker/token"
        assert envs["KEYBROKER_VAULT_ADDR"].startswith("https://")
        assert "uploads" not in props  # Docker refuses uploads into a read-only rootfs
    built = [r for r in run.of_type("docker:index/remoteImage:RemoteImage") if "build" in r.inputs]
    assert len(built) == min(_hosts(stack), len(run.containers("broker")))  # one per host used
    assert all(b.inputs["build"]["dockerfile"] == "Dockerfile" for b in built)
    if stack == "dev":
        (broker,) = run.containers("broker")
        assert [(p["ip"], p["external"]) for p in unwrap(broker.inputs)["ports"]] == [
            ("127.0.0.1", 8080)
        ]


def test_broker_base_image_is_a_build_argument() -> None:
    config = {**stack_config("dev"), "brokerBaseImage": "keybroker-base:bookworm"}
    run = run_program("dev", config, {})
    (built,) = [
        r for r in run.of_type("docker:index/remoteImage:RemoteImage") if "build" in r.inputs
    ]
    assert built.inputs["build"]["buildArgs"] == {"BASE_IMAGE": "keybroker-base:bookworm"}
    assert "ARG BASE_IMAGE" in (REPO / "Dockerfile").read_text()


def test_every_container_replacement_comes_with_a_new_credential() -> None:
    """Issue 14: replacing the broker container (new setting, image or CA) left it with a
    used wrapping token. The credential's `delivery` input follows the container's
    definition, so the same change issues a new token through a new seed."""
    base = shipped("dev")
    changed = run_program(
        "dev", {**stack_config("dev"), "allowFutures": "true"}, {"auditHmacKey": CANARY_HMAC}
    )

    def delivery(run: ProgramRun) -> str:
        return str(unwrap(run.one(DYN + "BrokerToken").inputs)["delivery"])

    assert len(delivery(base)) == 64
    assert delivery(changed) != delivery(base)
    again = run_program("dev", stack_config("dev"), {"auditHmacKey": CANARY_HMAC})
    assert delivery(again) == delivery(base)  # nothing changed: no new token


@pytest.mark.parametrize("stack", STACKS)
def test_broker_files_arrive_through_a_never_started_seed(stack: str) -> None:
    run = shipped(stack)
    seeds = {unwrap(s.inputs)["name"]: s for s in run.containers("broker-seed")}
    for broker in run.containers("broker"):
        broker_props = unwrap(broker.inputs)
        seed = seeds[f"{broker_props['name']}-seed"]
        seed_props = unwrap(seed.inputs)
        assert seed_props["start"] is False and seed_props["mustRun"] is False
        assert seed_props["networkMode"] == "none" and "ports" not in seed_props
        assert seed_props["capabilities"] == {"drops": ["ALL"]}
        assert seed_props["image"] == broker_props["image"]
        assert seed_props["volumes"] == broker_props["volumes"]  # the replica's /run/keybroker
        assert seed.inputs["uploads"].get(SECRET_SIG)  # secret input
        wrapped = _upload(seed, "/run/keybroker/credential.wrap")
        assert wrapped["content"].startswith(CANARY_WRAP_TOKEN)
        assert wrapped["permissions"] == "0400"
        assert _upload(seed, "/run/keybroker/secrets.yaml")["content"] == (
            f"audit_hmac_key: {CANARY_HMAC}\n"
        )
        # A new seed (a new credential) replaces the broker, which reads files at start.
        assert {"label": "keybroker.seed", "value": f"{seed.name}-id"} in broker_props["labels"]


@pytest.mark.parametrize("stack", STACKS)
def test_vault_config_applies_the_one_layout(stack: str) -> None:
    run = shipped(stack)
    cfg = parse_config(scenario_config(stack), stack=SCENARIOS[stack][0])
    expected = build_layout(
        mount=cfg.kv_mount,
        site_token_ttl=cfg.site_token_ttl,
        site_token_max_ttl=cfg.site_token_max_ttl,
        site_token_cidrs=cfg.site_token_cidrs,
        robot_cidrs=cfg.robot_cidrs,
        audit_devices=vault_hcl.audit_devices(),
    )
    layout = unwrap(run.one(DYN + "VaultConfig").inputs)["layout"]
    assert layout == layout_to_props(expected)
    for name, text in layout["policies"].items():
        assert text == policy_text(name, cfg.kv_mount)  # read from policies/vault, not restated
    assert len(layout["audit_devices"]) == 2
    assert layout["site_token_role"]["bound_cidrs"] == list(cfg.site_token_cidrs)
    # Batch site tokens are capped by the broker, not by Vault: both must agree.
    envs = _envs(run.containers("broker")[0])
    assert (
        float(envs["KEYBROKER_SITE_TOKEN_MAX_TTL"]) == layout["site_token_role"]["explicit_max_ttl"]
    )
    assert envs["KEYBROKER_SITE_TOKEN_ROLE"] == layout["site_token_role"]["name"]
    assert envs["KEYBROKER_KV_MOUNT"] == layout["mount"]


@pytest.mark.parametrize("stack", STACKS)
def test_outputs(stack: str) -> None:
    out = shipped(stack).outputs
    entry = "10.0.1.11" if _hosts(stack) == 3 else "127.0.0.1"
    assert out["vault_address"] == (f"https://{entry}:8200", False)
    assert out["broker_url"] == (f"http://{entry}:8080", False)
    assert out["site_token_role"] == ("keybroker-site", False)
    assert out["robot_role_id"][0] == "11111111-2222-3333-4444-555555555555"
    for name in ("root_token_secret_arn", "recovery_keys_secret_arn"):
        assert out[name][0].startswith("arn:aws:secretsmanager:")
    assert out["kms_key_arn"][0].startswith("arn:aws:kms:")
    assert all(value is not None for value, _ in out.values())  # preview off: all resolved


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_plain_anywhere(stack: str) -> None:
    run = shipped(stack)
    canaries = [
        CANARY_HMAC,
        CANARY_WRAP_TOKEN,
        "CANARY-TLS-KEY",
        CANARY_TLS_KEY[:20],
        CANARY_AWS_SECRET,
    ]
    seen_wrapped = set()
    for res in run.resources:
        for text in plain_strings(res.inputs):
            for canary in canaries:
                assert canary not in text, f"{canary} in plain in {res.typ} {res.name}"
        everything = repr(unwrap(res.inputs))
        seen_wrapped |= {c for c in canaries if c in everything}
    # The canaries did flow through the program (so the scan above can fail).
    expected = {CANARY_HMAC, CANARY_WRAP_TOKEN, "CANARY-TLS-KEY"}
    if stack == "dev":  # the shipped prod uses the hosts' instance role
        expected.add(CANARY_AWS_SECRET)
    assert expected <= seen_wrapped
    for name, (value, secret) in run.outputs.items():
        assert not any(c in repr(value) for c in canaries), name
        assert not secret or name.endswith("_arn"), name


@pytest.mark.parametrize("stack", STACKS)
def test_a_first_preview_registers_the_same_resources(stack: str) -> None:
    """With every computed output unknown (a first `pulumi preview`), the program still
    declares the same resources, so the policy pack sees all of them."""
    preview = run_program(
        SCENARIOS[stack][0], scenario_config(stack), {"auditHmacKey": CANARY_HMAC}, preview=True
    )
    full = shipped(stack)
    assert sorted((r.typ, r.name) for r in preview.resources) == sorted(
        (r.typ, r.name) for r in full.resources
    )


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="no haproxy binary to check with")
def test_haproxy_accepts_the_load_balancer_config(tmp_path: Path) -> None:
    """The generated config, checked by HAProxy itself (`haproxy -c`; Debian's package)."""
    (lb,) = shipped("prod").containers("broker-lb")
    config = tmp_path / "haproxy.cfg"
    config.write_text(_upload(lb, "/usr/local/etc/haproxy/haproxy.cfg")["content"])
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
