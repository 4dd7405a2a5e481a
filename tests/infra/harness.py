"""Runs the keybroker Pulumi program in-process under `pulumi.runtime.set_mocks`.

Test double for the Pulumi engine, following docs/facts/pulumi.md §1: the mock sees each
registration's type token, name and engine (camelCase) inputs, with secrets as wrapped
dicts; preview is OFF so that every output resolves and no `.apply` is skipped;
config is injected with `set_all_config` under the real project name. Dynamic
providers' CRUD never runs here (§2): the mock answers with plausible outputs, and
the providers themselves are tested for real against devvault and moto.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

REPO = Path(__file__).resolve().parents[2]
PROJECT = "keybroker"
# Marker key of a secret value in mocked inputs (pulumi/runtime/rpc.py _special_sig_key).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"

DYN = "pulumi-python:dynamic/keybroker:"
CANARY_WRAP_TOKEN = "hvs.CANARY-WRAPPED-SECRET-ID-7f3a"
CANARY_TLS_KEY = "-----BEGIN PRIVATE KEY-----\nCANARY-TLS-KEY-{i}\n-----END PRIVATE KEY-----\n"
MOCK_CA = "-----BEGIN CERTIFICATE-----\nMOCK-CA\n-----END CERTIFICATE-----\n"
CANARY_AWS_SECRET = "CANARY-aws-secret-access-key-5b1c"
CANARY_AWS_CREDENTIALS = (
    f"[default]\naws_access_key_id = AKIACANARY\naws_secret_access_key = {CANARY_AWS_SECRET}\n"
)
REGISTRY_IMAGE = "docker:index/getRegistryImage:getRegistryImage"


def registry_digest(name: str) -> str:
    """The digest the mocked registry answers for `name` (a test double, never real)."""
    return "sha256:" + hashlib.sha256(f"mock-registry:{name}".encode()).hexdigest()


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]  # raw engine inputs: secrets still wrapped


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)  # name -> (value, secret)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # invokes
    call_providers: list[str] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {len(found)}"
        return found[0]

    def containers(self, role: str) -> list[Registered]:
        return [
            r
            for r in self.of_type("docker:index/container:Container")
            if {"label": "keybroker.role", "value": role} in unwrap(r.inputs).get("labels", [])
        ]


def unwrap(value: Any) -> Any:
    """Inputs with secret wrappers replaced by their plaintext (what CrossGuard sees)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARK:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any) -> list[str]:
    """Every string in `value` that is NOT inside a secret wrapper."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARK:
            return []
        return [s for k, v in value.items() for s in [k, *plain_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in plain_strings(v)]
    return [value] if isinstance(value, str) else []


def _fake_outputs(args: MockResourceArgs) -> dict[str, Any]:
    inputs = dict(args.inputs)
    typ = args.typ
    if typ == "docker:index/remoteImage:RemoteImage":
        digest = hashlib.sha256(str(inputs.get("name")).encode()).hexdigest()
        return {**inputs, "imageId": f"sha256:{digest}", "repoDigest": f"{inputs.get('name')}"}
    if typ == DYN + "KmsKey":
        key_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, args.name))
        arn = inputs.get("existing_key_arn") or f"arn:aws:kms:eu-west-1:123456789012:key/{key_id}"
        return {**inputs, "arn": arn, "key_id": arn.rsplit("/", 1)[1], "managed": True}
    if typ == DYN + "TlsBundle":
        nodes = len(inputs["nodes"])
        return {
            **inputs,
            "ca_cert_pem": MOCK_CA,
            "cert_pems": [MOCK_CA.replace("MOCK-CA", f"MOCK-NODE-{i}") for i in range(nodes)],
            "key_pems": [CANARY_TLS_KEY.format(i=i) for i in range(nodes)],
            "not_after": "2027-11-21T00:00:00+00:00",
        }
    if typ == DYN + "VaultInit":
        prefix = inputs["secrets_prefix"]
        base = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
        return {
            **inputs,
            "root_token_secret_arn": f"{base}{prefix}/vault-root-token-AbCdEf",
            "recovery_keys_secret_arn": f"{base}{prefix}/vault-recovery-keys-AbCdEf",
        }
    if typ == DYN + "VaultConfig":
        return {
            **inputs,
            "site_token_role": inputs["layout"]["site_token_role"]["name"],
            "robot_role_id": "11111111-2222-3333-4444-555555555555",
            "changed_steps": [],
        }
    if typ == DYN + "BrokerTokenIssuer":
        base = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
        return {
            **inputs,
            "issuer_secret_arn": f"{base}{inputs['secrets_prefix']}/broker-token-issuer-AbCdEf",
            "role_name": "keybroker-broker-periodic",
            "issuer_ttl_s": 2764800,
        }
    if typ == DYN + "BrokerToken":
        return {
            **inputs,
            "wrapped_token": f"{CANARY_WRAP_TOKEN}-{inputs['replica']}",
            "accessor": f"accessor-{inputs['replica']}",
            "issued_at": "2026-11-21T00:00:00+00:00",
            "alive": True,
        }
    if typ == DYN + "RootTokenRevocation":
        return {**inputs, "revoked_at": "2026-11-21T00:00:00+00:00"}
    return inputs


class RecordingMocks(Mocks):
    def __init__(self, *, known_outputs: bool = True) -> None:
        self.registered: list[Registered] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.call_providers: list[str] = []  # provider reference of each invoke ("" default)
        self.known_outputs = known_outputs

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append(Registered(args.typ, args.name, dict(args.inputs)))
        if not self.known_outputs:  # a first preview: computed outputs are unknown
            return None, dict(args.inputs)
        return f"{args.name}-id", _fake_outputs(args)

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        # A plain dict is accepted (docs/facts/pulumi.md §1); None as the failures
        # element of a tuple is not.
        self.calls.append((args.token, dict(args.args)))
        self.call_providers.append(str(args.provider or ""))
        if args.token == REGISTRY_IMAGE:
            name = str(args.args["name"])
            return {"id": name, "name": name, "sha256Digest": registry_digest(name)}
        return {}


def stack_config(stack: str) -> dict[str, str]:
    """The shipped Pulumi.<stack>.yaml config, keys without the namespace."""
    data = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    out: dict[str, str] = {}
    for key, value in data["config"].items():
        namespace, _, name = key.partition(":")
        assert namespace == PROJECT, key
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def with_canary_credentials(config: dict[str, str]) -> dict[str, str]:
    """`config` with awsCredentialsFile (read by the program) pointing at a canary file."""
    if not config.get("awsCredentialsFile"):
        return config
    path = Path(tempfile.gettempdir()) / "keybroker-test-aws-credentials"
    path.write_text(CANARY_AWS_CREDENTIALS)
    return {**config, "awsCredentialsFile": str(path)}


def run_program(
    stack: str,
    config: dict[str, str],
    secrets: dict[str, str] | None = None,
    *,
    preview: bool = False,
) -> ProgramRun:
    """Run infra/__main__.py's main() for `stack` with `config` (+ secret config).

    preview=False (the default) resolves every output; preview=True models a first
    `pulumi preview`, where computed outputs are unknown and `.apply` bodies are skipped.
    """
    config = with_canary_credentials(config)
    mocks = RecordingMocks(known_outputs=not preview)
    # Pulumi's runtime uses the thread's current event loop; an earlier async test
    # (pytest-asyncio) may have closed it and left none. Give each run its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview)
    values = {f"{PROJECT}:{k}": v for k, v in config.items()}
    values.update({f"{PROJECT}:{k}": v for k, v in (secrets or {}).items()})
    pulumi.runtime.set_all_config(values, secret_keys=[f"{PROJECT}:{k}" for k in secrets or {}])
    run = ProgramRun()

    async def resolve_exports() -> None:
        root = pulumi.runtime.settings.get_root_resource()
        for name, value in root.outputs.items():  # type: ignore[union-attr]
            out = pulumi.Output.from_input(value)
            run.outputs[name] = (await out.future(), await out.is_secret())

    @pulumi.runtime.test
    def program() -> Any:
        from infra.__main__ import main

        main()
        return pulumi.Output.from_input(asyncio.ensure_future(resolve_exports()))

    try:
        program()
    finally:
        pulumi.runtime.set_all_config({})
        asyncio.set_event_loop(None)
        loop.close()
    run.resources = mocks.registered
    run.calls = mocks.calls
    run.call_providers = mocks.call_providers
    return run
