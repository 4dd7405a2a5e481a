"""The broker image, really built and run the way the stack runs it (issue 14).

Builds the Dockerfile on a base made from Debian packages, then deploys one replica by
hand exactly as infra/components/broker_service.py declares it: a never-started seed
container receives the wrapped credential through Docker's archive API (what
pulumi-docker's `uploads` call), into the replica's volume; the broker container runs
read-only, as uid 10001, with every capability dropped and no-new-privileges. Its
credential comes from the stack's own providers (a periodic token from the issuer,
against devvault and moto). Then /healthz and /readyz answer, a restart finds the kept
token, and the wrapping token is gone. The network is the host's (devvault listens on
loopback); the stack itself uses its bridge networks.

Marked `docker`; skipped, with the reason, where no Docker engine can run.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest

from broker.bootstrap import create_caller_token
from broker.layout import SITE_BACKEND_POLICY
from infra.components import broker_service as svc
from infra.providers.broker_token import BrokerTokenProvider
from keybroker_dev.devvault.server import DevVaultServer
from keybroker_dev.ports import free_port
from tests.infra import docker_engine
from tests.infra.conftest import _token_props

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def broker_image() -> Iterator[str]:
    try:
        with docker_engine.engine():
            started = time.monotonic()
            image = docker_engine.build_broker_image("keybroker-broker:test")
            print(f"broker image built in {time.monotonic() - started:.0f}s")
            yield image
    except docker_engine.NoEngine as exc:
        pytest.skip(str(exc))


def _upload(container: str, files: list[tuple[str, bytes, int]]) -> None:
    """pulumi-docker's uploads: a tar copied to "/" of the container (archive API)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data, mode in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            info.uid = info.gid = int(svc.BROKER_UID)
            tar.addfile(info, io.BytesIO(data))
    curl = ["curl", "-sf", "--unix-socket", "/var/run/docker.sock", "-X", "PUT"]
    curl += ["-H", "Content-Type: application/x-tar", "--data-binary", "@-"]
    subprocess.run(
        [*curl, f"http://localhost/containers/{container}/archive?path=/"],
        input=buffer.getvalue(),
        check=True,
        capture_output=True,
        timeout=30,
    )


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _site_token(base: str, caller: str) -> str:
    request = urllib.request.Request(
        f"{base}/v1/site-tokens",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {caller}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["token"])


def _wait_for(url: str, status: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _get(url) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never answered {status}")
        time.sleep(0.5)


def test_image_runs_hardened_with_its_credential_from_the_seed(
    broker_image: str,
    aws: Any,
    fresh_vault: DevVaultServer,
    issuer: dict[str, Any],
) -> None:
    wrapped = BrokerTokenProvider().create(_token_props(issuer, fresh_vault)).outs
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    caller = create_caller_token(root, [SITE_BACKEND_POLICY])
    name = f"kbtest-{uuid.uuid4().hex[:8]}"
    volume, port = f"{name}-run", free_port()
    run_volume = f"{volume}:{svc.RUN_DIR}"
    hardening = [
        "--user", f"{svc.BROKER_UID}:{svc.BROKER_UID}",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges:true",
    ]  # fmt: skip
    try:
        docker_engine.docker("volume", "create", volume)
        docker_engine.docker(
            "create", "--name", f"{name}-seed", "--network", "none", *hardening,
            "-v", run_volume, broker_image, "true",
        )  # fmt: skip
        _upload(
            f"{name}-seed",
            [(svc.WRAPPED_CREDENTIAL_FILE, wrapped["wrapped_token"].encode(), 0o400)],
        )
        envs = {
            "KEYBROKER_VAULT_ADDR": fresh_vault.addr,
            "KEYBROKER_VAULT_WRAPPED_CREDENTIAL_FILE": svc.WRAPPED_CREDENTIAL_FILE,
            "KEYBROKER_VAULT_TOKEN_SINK_FILE": svc.TOKEN_SINK_FILE,
            "KEYBROKER_LISTEN": f"127.0.0.1:{port}",
            "KEYBROKER_EXCHANGES": "binance",
        }
        docker_engine.docker(
            "run", "-d", "--name", name, "--read-only", *hardening,
            "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=16m",
            "--network", "host", "-v", run_volume,
            *[arg for k, v in envs.items() for arg in ("-e", f"{k}={v}")],
            broker_image,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/healthz", 200)
        assert _get(f"{base}/readyz") == 200
        # The broker's own token at work: it looks the caller up and mints a site token.
        assert _site_token(base, caller).startswith("hvb.")
        inspect = json.loads(docker_engine.docker("inspect", name))[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["HostConfig"]["CapDrop"] == ["ALL"]
        assert inspect["Config"]["User"] == "10001:10001"
        assert not any(e.startswith("KEYBROKER_VAULT_TOKEN=") for e in inspect["Config"]["Env"])
        # A restart finds its kept token (the single-use wrapping token is gone).
        docker_engine.docker("restart", name)
        _wait_for(f"{base}/healthz", 200)
        assert _get(f"{base}/readyz") == 200
        assert _site_token(base, caller).startswith("hvb.")
        listing = docker_engine.docker(
            "run", "--rm", "--network", "none", *hardening, "-v", run_volume,
            "--entrypoint", "ls", broker_image, "-ln", svc.RUN_DIR,
        )  # fmt: skip
        assert "credential.wrap" not in listing
        assert "-rw------- 1 10001 10001" in listing  # the kept token, owner-only
        logs = docker_engine.docker("logs", name)
        assert wrapped["wrapped_token"] not in logs
    finally:
        for container in (name, f"{name}-seed"):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", volume], capture_output=True, check=False)
