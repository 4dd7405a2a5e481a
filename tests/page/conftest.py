"""`dev_stack` / `dev`: one `keybroker dev` stack (devvault, sandbox, broker, key page)
shared by this package's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keybroker_dev.devmode import DevStack, DevState


@pytest.fixture(scope="package")
def dev_output() -> list[str]:
    """What the stack told the terminal while starting."""
    return []


@pytest.fixture(scope="package")
def dev_stack(
    tmp_path_factory: pytest.TempPathFactory, dev_output: list[str]
) -> Iterator[DevStack]:
    stack = DevStack(tmp_path_factory.mktemp("dev") / "dev.json", "devvault", dev_output.append)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def dev(dev_stack: DevStack) -> DevState:
    assert dev_stack.state is not None
    return dev_stack.state
