"""Fixtures for the conformance suite.

Every conformance test runs against an in-process devvault, and again against a real
Vault when KEYBROKER_TEST_VAULT_ADDR and KEYBROKER_TEST_VAULT_TOKEN are set (otherwise
test_real_vault.py is skipped with that reason). Those tests use only Vault's public
HTTP API through hvac. Tests that need devvault internals (clock, faults, local audit files) use the
`devvault` fixture instead and say so in their skip reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import hvac
import pytest
import requests

from keybroker_dev.devvault.server import DevVaultServer
from tests.fixtures.vault import (
    VaultEndpoint,
    real_vault_from_env,
    unique_name,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each conformance test against devvault, and also against a real Vault when
    one is configured (test_real_vault.py reports the skip once when it is not)."""
    if "endpoint" in metafunc.fixturenames:
        targets = ["devvault"] + (["real-vault"] if real_vault_from_env() else [])
        metafunc.parametrize("endpoint", targets, indirect=True, scope="session")


@pytest.fixture(scope="session")
def endpoint(request: pytest.FixtureRequest) -> Iterator[VaultEndpoint]:
    if request.param == "real-vault":
        real = real_vault_from_env()
        assert real is not None
        yield real
        return
    with DevVaultServer() as srv:
        yield VaultEndpoint(addr=srv.addr, root_token=srv.root_token, devvault=srv)


@pytest.fixture
def root(endpoint: VaultEndpoint) -> hvac.Client:
    return endpoint.client()


@pytest.fixture
def mount(root: hvac.Client) -> Iterator[str]:
    """A fresh KV v2 mount on the endpoint."""
    name = unique_name("kv")
    root.sys.enable_secrets_engine("kv", path=name, options={"version": "2"})
    yield name
    root.sys.disable_secrets_engine(path=name)


@pytest.fixture
def make_policy(root: hvac.Client) -> Iterator[Callable[[str], str]]:
    """Write an ACL policy under a unique name; deleted after the test."""
    created: list[str] = []

    def make(text: str, prefix: str = "p") -> str:
        name = unique_name(prefix)
        root.sys.create_or_update_acl_policy(name, text)
        created.append(name)
        return name

    yield make
    for name in created:
        root.sys.delete_acl_policy(name)


@pytest.fixture
def make_role(root: hvac.Client) -> Iterator[Callable[..., str]]:
    """Write a token role (any body, e.g. token_type/token_bound_cidrs) under a unique name."""
    created: list[str] = []

    def make(**body: Any) -> str:
        name = unique_name("role")
        root.write_data(f"auth/token/roles/{name}", data=body)
        created.append(name)
        return name

    yield make
    for name in created:
        root.auth.token.delete_role(name)


@pytest.fixture
def client_for(endpoint: VaultEndpoint) -> Callable[[str], hvac.Client]:
    return endpoint.client


class RawHTTP:
    """Plain HTTP to the endpoint, for status codes and bodies hvac does not expose."""

    def __init__(self, endpoint: VaultEndpoint) -> None:
        self.endpoint = endpoint
        self.session = requests.Session()

    def __call__(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        sent = {"X-Vault-Token": self.endpoint.root_token if token is None else token}
        if token == "":
            sent = {}
        sent.update(headers or {})
        return self.session.request(
            method,
            f"{self.endpoint.addr}/v1/{path}",
            json=json,
            data=data,
            headers=sent,
            timeout=10,
        )


@pytest.fixture
def http(endpoint: VaultEndpoint) -> RawHTTP:
    return RawHTTP(endpoint)
