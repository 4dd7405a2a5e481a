"""The whole Pulumi program under mocks, for the shipped dev and prod stacks.

Each resource's security-relevant properties are asserted on the inputs the engine
would receive (docs/facts/pulumi.md §1), with preview off so every output resolves.
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from broker.layout import build_layout, policy_text
from infra import vault_hcl
from infra.config import parse_config
from infra.layout_props import layout_to_props
from policies.hcl import parse_document
from policies.pack import props as pack_props
from tests.infra.harness import (
    CANARY_TLS_KEY,
    CANARY_WRAP_TOKEN,
    DYN,
    ProgramRun,
    plain_strings,
    run_program,
    stack_config,
    unwrap,
)

CANARY_HMAC = "CANARY-audit-hmac-key-9d2e"
CONTAINER = "docker:index/container:Container"


@cache
def shipped(stack: str) -> ProgramRun:
    return run_program(stack, stack_config(stack), {"auditHmacKey": CANARY_HMAC})


STACKS = ["dev", "prod"]


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
    assert len(run.containers("vault")) == nodes
    assert len(run.containers("broker")) == 1
    assert len(run.containers("broker-seed")) == 1
    assert len(run.of_type("docker:index/volume:Volume")) == 2 * nodes + 1
    networks = {r.inputs["name"]: r.inputs for r in run.of_type("docker:index/network:Network")}
    assert networks[f"keybroker-{stack}-internal"]["internal"] is True
    assert networks[f"keybroker-{stack}-edge"]["internal"] is False
    for token in ("KmsKey", "TlsBundle", "VaultInit", "VaultConfig", "BrokerSecretId"):
        run.one(DYN + token)
    revocations = run.of_type(DYN + "RootTokenRevocation")
    assert len(revocations) == (1 if stack == "prod" else 0)


@pytest.mark.parametrize("stack", STACKS)
def test_vault_nodes(stack: str) -> None:
    run = shipped(stack)
    cfg = stack_config(stack)
    kms_arn = run.outputs["kms_key_arn"][0]
    vaults = sorted(run.containers("vault"), key=lambda r: r.name)
    for index, res in enumerate(vaults):
        props = unwrap(res.inputs)
        assert props["command"] == ["server"]  # never the image's `server -dev`
        assert props["image"] == cfg["vaultImage"]
        assert re.search(r"@sha256:[0-9a-f]{64}$", props["image"])
        assert "IPC_LOCK" in props["capabilities"]["adds"]
        assert props["healthcheck"]["tests"] == ["CMD", "vault", "status"]
        assert {v["containerPath"] for v in props["volumes"]} == {"/vault/file", "/vault/logs"}
        assert [p["ip"] for p in props["ports"]] == ["127.0.0.1"]
        assert props["ports"][0]["external"] == 8200 + index
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


def test_dev_has_mlock_disabled_with_no_new_privileges() -> None:
    (vault,) = shipped("dev").containers("vault")
    assert unwrap(vault.inputs)["securityOpts"] == ["no-new-privileges:true"]


@pytest.mark.parametrize("stack", STACKS)
def test_broker_container(stack: str) -> None:
    run = shipped(stack)
    (broker,) = run.containers("broker")
    props = unwrap(broker.inputs)
    assert props["user"] == "10001:10001"
    assert props["readOnly"] is True
    assert props["securityOpts"] == ["no-new-privileges:true"]
    assert props["capabilities"] == {"drops": ["ALL"]}
    assert props["memory"] > 0 and float(props["cpus"]) > 0
    assert "healthz" in " ".join(props["healthcheck"]["tests"])
    assert [p["ip"] for p in props["ports"]] == ["127.0.0.1"]
    built = [r for r in run.of_type("docker:index/remoteImage:RemoteImage") if "build" in r.inputs]
    assert len(built) == 1 and built[0].inputs["build"]["dockerfile"] == "Dockerfile"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", props["image"])
    envs = _envs(broker)
    assert "KEYBROKER_VAULT_SECRET_ID" not in envs and "KEYBROKER_VAULT_TOKEN" not in envs
    assert envs["KEYBROKER_VAULT_WRAPPED_SECRET_ID_FILE"] == "/run/keybroker/secret-id.wrap"
    assert envs["KEYBROKER_VAULT_ADDR"].startswith("https://")
    assert envs["KEYBROKER_VAULT_ROLE_ID"] == "66666666-7777-8888-9999-000000000000"
    assert "uploads" not in props  # Docker refuses uploads into a read-only rootfs


@pytest.mark.parametrize("stack", STACKS)
def test_broker_files_arrive_through_a_never_started_seed(stack: str) -> None:
    run = shipped(stack)
    (seed,) = run.containers("broker-seed")
    (broker,) = run.containers("broker")
    seed_props, broker_props = unwrap(seed.inputs), unwrap(broker.inputs)
    assert seed_props["start"] is False and seed_props["mustRun"] is False
    assert seed_props["networkMode"] == "none" and "ports" not in seed_props
    assert seed_props["capabilities"] == {"drops": ["ALL"]}
    assert seed_props["image"] == broker_props["image"]
    assert seed_props["volumes"] == broker_props["volumes"]  # the shared /run/keybroker
    assert seed.inputs["uploads"].get("4dabf18193072939515e22adb298388d")  # secret input
    wrapped = _upload(seed, "/run/keybroker/secret-id.wrap")
    assert wrapped["content"] == CANARY_WRAP_TOKEN and wrapped["permissions"] == "0400"
    assert _upload(seed, "/run/keybroker/secrets.yaml")["content"] == (
        f"audit_hmac_key: {CANARY_HMAC}\n"
    )
    # A new seed (rotation) replaces the broker, which reads the files once at start.
    seed_label = {"label": "keybroker.seed", "value": f"{seed.name}-id"}
    assert seed_label in broker_props["labels"]


@pytest.mark.parametrize("stack", STACKS)
def test_vault_config_applies_the_one_layout(stack: str) -> None:
    run = shipped(stack)
    cfg = parse_config(stack_config(stack), stack=stack)
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
    (broker,) = run.containers("broker")
    envs = _envs(broker)
    assert (
        float(envs["KEYBROKER_SITE_TOKEN_MAX_TTL"]) == layout["site_token_role"]["explicit_max_ttl"]
    )
    assert envs["KEYBROKER_SITE_TOKEN_ROLE"] == layout["site_token_role"]["name"]
    assert envs["KEYBROKER_KV_MOUNT"] == layout["mount"]


@pytest.mark.parametrize("stack", STACKS)
def test_outputs(stack: str) -> None:
    out = shipped(stack).outputs
    assert out["vault_address"] == ("https://127.0.0.1:8200", False)
    assert out["broker_url"] == ("http://127.0.0.1:8080", False)
    assert out["site_token_role"] == ("keybroker-site", False)
    assert out["robot_role_id"][0] == "11111111-2222-3333-4444-555555555555"
    for name in ("root_token_secret_arn", "recovery_keys_secret_arn"):
        assert out[name][0].startswith("arn:aws:secretsmanager:")
    assert out["kms_key_arn"][0].startswith("arn:aws:kms:")
    assert all(value is not None for value, _ in out.values())  # preview off: all resolved


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_plain_anywhere(stack: str) -> None:
    run = shipped(stack)
    canaries = [CANARY_HMAC, CANARY_WRAP_TOKEN, "CANARY-TLS-KEY", CANARY_TLS_KEY[:20]]
    seen_wrapped = set()
    for res in run.resources:
        for text in plain_strings(res.inputs):
            for canary in canaries:
                assert canary not in text, f"{canary} in plain in {res.typ} {res.name}"
        everything = repr(unwrap(res.inputs))
        seen_wrapped |= {c for c in canaries if c in everything}
    # The canaries did flow through the program (so the scan above can fail).
    assert {CANARY_HMAC, CANARY_WRAP_TOKEN, "CANARY-TLS-KEY"} <= seen_wrapped
    for name, (value, secret) in run.outputs.items():
        assert not any(c in repr(value) for c in canaries), name
        assert not secret or name.endswith("_arn"), name


@pytest.mark.parametrize("stack", STACKS)
def test_a_first_preview_registers_the_same_resources(stack: str) -> None:
    """With every computed output unknown (a first `pulumi preview`), the program still
    declares the same resources, so the policy pack sees all of them."""
    preview = run_program(stack, stack_config(stack), {"auditHmacKey": CANARY_HMAC}, preview=True)
    full = shipped(stack)
    assert sorted((r.typ, r.name) for r in preview.resources) == sorted(
        (r.typ, r.name) for r in full.resources
    )
