"""A Docker engine for the image test: the running one, or a `dockerd` started here.

Facts (docs/deploy.md "Deploy facts"): Debian's docker.io package starts as root on
these machines, no image registry is reachable, so the broker image's base is made
from Debian packages (infra/docker/base-image.sh: debootstrap + `docker import`) and
kept in the engine as a cache across runs. Everything here answers with a reason to
skip instead of failing when no engine can run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "keybroker-base:bookworm"
START_TIMEOUT_S = 30.0


class NoEngine(Exception):
    """No Docker engine can run here; the message says why (the skip reason)."""


def docker(*args: str, timeout: float = 300, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def _answers() -> bool:
    try:
        docker("info", timeout=10)
    except (RuntimeError, subprocess.TimeoutExpired, FileNotFoundError):
        return False
    return True


@contextmanager
def engine() -> Iterator[None]:
    """A usable engine for the duration; a dockerd started here is stopped (by pid)."""
    if shutil.which("docker") is None:
        raise NoEngine("no docker client (apt-get install docker.io)")
    if _answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise NoEngine("no Docker engine answers and dockerd is not installed")
    if os.geteuid() != 0:
        raise NoEngine("no Docker engine answers and starting dockerd needs root")
    log = open("/tmp/keybroker-test-dockerd.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([dockerd], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers():
            if process.poll() is not None or time.monotonic() > deadline:
                raise NoEngine(
                    "dockerd did not start (see /tmp/keybroker-test-dockerd.log):"
                    " no Docker engine can run here"
                )
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def base_image() -> str:
    """The Debian-packages base image (built once, then reused from the engine)."""
    try:
        docker("image", "inspect", BASE_IMAGE, timeout=30)
        return BASE_IMAGE
    except RuntimeError:
        pass
    if shutil.which("debootstrap") is None:
        raise NoEngine(f"no {BASE_IMAGE} image and no debootstrap to make one")
    done = subprocess.run(
        [str(REPO / "infra" / "docker" / "base-image.sh"), BASE_IMAGE],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise NoEngine(f"the base image could not be built: {done.stderr.decode()[-500:]}")
    return BASE_IMAGE


def build_broker_image(tag: str) -> str:
    """Build the repository's Dockerfile on the base; the image id."""
    docker(
        "build",
        "--network",
        "host",  # package downloads go through this machine's network setup
        "--build-arg",
        f"BASE_IMAGE={base_image()}",
        "-t",
        tag,
        str(REPO),
        timeout=900,
    )
    return docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
