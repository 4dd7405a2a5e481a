"""Fixtures for the Transit tests: a fresh transit mount and BYOK import helpers.

They run on `vault_endpoint`: an in-process devvault, or a real Vault when
KEYBROKER_TEST_VAULT_ADDR / KEYBROKER_TEST_VAULT_TOKEN are set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hvac
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from broker.custody.byok import HASH_FUNCTION, wrap_for_import
from tests.fixtures.vault import unique_name


@dataclass(frozen=True)
class TransitMount:
    client: hvac.Client
    path: str

    def wrap(self, material: bytes) -> str:
        pem = self.client.read(f"{self.path}/wrapping_key")["data"]["public_key"]
        return wrap_for_import(material, pem)

    def import_key(self, name: str, key_type: str, material: bytes, **extra: object) -> None:
        self.client.write(
            f"{self.path}/keys/{name}/import",
            ciphertext=self.wrap(material),
            hash_function=HASH_FUNCTION,
            type=key_type,
            **extra,
        )


@pytest.fixture
def transit(vault_client: hvac.Client) -> Iterator[TransitMount]:
    path = unique_name("transit")
    vault_client.sys.enable_secrets_engine("transit", path=path)
    yield TransitMount(vault_client, path)
    vault_client.sys.disable_secrets_engine(path=path)


def pkcs8(private: object) -> bytes:
    return private.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def asymmetric_keys() -> dict[str, object]:
    """One private key per signing type keybroker imports (RSA generation is slow)."""
    return {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
        "rsa-2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture
def name() -> Callable[[str], str]:
    return unique_name
