"""The product wheel: no infra toolchain in its core dependencies, no test doubles or
Pulumi program in its files (docs/client.md, README "What is where")."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA_ONLY = {"pulumi", "pulumi-docker", "pulumi-policy", "boto3"}
_PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy: an in-tree build would leave build/ and *.egg-info behind.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("broker", "policies", "infra", "devtools"):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [*_PIP_WHEEL, "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("keybroker-*.whl")
    return built


def _requirement_name(line: str) -> str:
    name = line.split(";")[0].strip()
    for stop in "<>=!~[ (":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def test_core_requirements_hold_no_infra_toolchain(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (meta_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(meta_name).decode())
    requires = meta.get_all("Requires-Dist") or []
    core = {_requirement_name(r) for r in requires if "extra ==" not in r}
    infra = {_requirement_name(r) for r in requires if 'extra == "infra"' in r}
    assert {"hvac", "requests"} <= core
    assert not core & INFRA_ONLY
    assert infra >= INFRA_ONLY  # they moved to the extra, they did not vanish


def test_wheel_holds_only_the_product(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {n.split("/")[0] for n in archive.namelist() if not n.startswith("keybroker-")}
        names = archive.namelist()
    assert tops == {"broker", "policies"}
    assert not [n for n in names if "keybroker_dev" in n or n.startswith("infra/")]
    assert "broker/client.py" in names and "broker/durations.py" in names
