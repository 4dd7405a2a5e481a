"""broker/custody: import every secret scheme with the broker's own Vault rights, prove
it, refuse what Transit cannot hold, and undo a new key whose proof fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import hvac
import hvac.exceptions
import pytest

import broker.custody.transit as custody_module
from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.config import Settings
from broker.custody.material import NotImportable, classify
from broker.custody.transit import CustodyProofFailed, TransitCustody
from broker.exchanges.base import Credentials
from broker.layout import KeyPaths, build_layout
from broker.vault_session import VaultSession
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.vault import VaultEndpoint, unique_name

MOUNT = "exchange-signing"


@pytest.fixture
async def custody(vault_endpoint: VaultEndpoint) -> AsyncIterator[TransitCustody]:
    """TransitCustody logged in as the broker's AppRole (its shipped policies only)."""
    root = vault_endpoint.client()
    apply_layout(root, build_layout())
    creds = issue_approle_credentials(root, "keybroker-broker")
    from pydantic import SecretStr

    session = VaultSession(
        Settings(
            vault_addr=vault_endpoint.addr,
            vault_role_id=creds.role_id,
            vault_secret_id=SecretStr(creds.secret_id),
        )
    )
    yield TransitCustody(session, MOUNT)
    await session.aclose()


def _paths(exchange: str, role: str = "robot") -> KeyPaths:
    return KeyPaths("exchange-keys", role, unique_name("acct"), exchange)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exchange", "label", "transit_type"),
    [
        ("binance", "rsa", "rsa-2048"),
        ("binance", "ed25519", "ed25519"),
        ("coinbase", "cdp", "ecdsa-p256"),
        ("coinbase", "cdp_ed25519", "ed25519"),
        ("kraken", "read_only", "hmac"),
        ("okx", "read_only", "hmac"),
    ],
)
async def test_every_scheme_imports_with_the_broker_policy(
    custody: TransitCustody,
    vault_client: hvac.Client,
    sandbox: SandboxServer,
    exchange: str,
    label: str,
    transit_type: str,
) -> None:
    key = sandbox.key(exchange, label)
    paths = _paths(exchange)
    data = await custody.store(paths, Credentials(key.api_key, key.secret, key.passphrase))
    assert "secret" not in data and key.secret not in str(data)
    assert data["custody"] == "transit" and data["transit_version"] == "1"
    assert data["api_key"] == key.api_key
    described = vault_client.read(f"{MOUNT}/keys/{data['transit_key']}")["data"]
    assert described["type"] == transit_type
    assert described["exportable"] is False and described["allow_plaintext_backup"] is False
    assert described["deletion_allowed"] is True
    # A replacement of the same type adds a version; delete removes the key.
    again = await custody.store(paths, Credentials(key.api_key, key.secret, key.passphrase))
    assert again["transit_version"] == "2"
    assert await custody.delete(paths) is True
    assert vault_client.read(f"{MOUNT}/keys/{data['transit_key']}") is None


async def test_a_failed_proof_removes_the_new_key(
    custody: TransitCustody, vault_client: hvac.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The material Vault receives differs from the checked secret (a tampered wrap):
    the proof catches it and nothing is left in Transit."""
    real_wrap = custody_module.wrap_for_import
    monkeypatch.setattr(
        custody_module, "wrap_for_import", lambda material, pem: real_wrap(b"x" * 40, pem)
    )
    paths = _paths("okx")
    with pytest.raises(CustodyProofFailed):
        await custody.store(paths, Credentials("key", "checked-secret-" + "s" * 20, "pp"))
    name = f"robot-{paths.account}-okx"
    assert vault_client.read(f"{MOUNT}/keys/{name}") is None


async def test_a_failed_public_key_proof_removes_the_new_key(
    custody: TransitCustody,
    vault_client: hvac.Client,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asymmetric keys: Vault holds another Ed25519 key than the one checked."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    real_wrap = custody_module.wrap_for_import
    monkeypatch.setattr(
        custody_module, "wrap_for_import", lambda material, pem: real_wrap(other, pem)
    )
    key = sandbox.key("binance", "ed25519")
    paths = _paths("binance")
    with pytest.raises(CustodyProofFailed):
        await custody.store(paths, Credentials(key.api_key, key.secret, None))
    assert vault_client.read(f"{MOUNT}/keys/robot-{paths.account}-binance") is None


async def test_a_changed_key_type_replaces_the_transit_key(
    custody: TransitCustody, vault_client: hvac.Client, sandbox: SandboxServer
) -> None:
    paths = _paths("binance")
    hmac_key = sandbox.key("binance", "read_only")
    ed_key = sandbox.key("binance", "ed25519")
    await custody.store(paths, Credentials(hmac_key.api_key, hmac_key.secret, None))
    data = await custody.store(paths, Credentials(ed_key.api_key, ed_key.secret, None))
    assert data["scheme"] == "ed25519-pem" and data["transit_version"] == "1"
    assert vault_client.read(f"{MOUNT}/keys/{data['transit_key']}")["data"]["type"] == "ed25519"
    await custody.delete(paths)


def test_secrets_transit_cannot_hold_are_refused_with_a_typed_reason() -> None:
    with pytest.raises(NotImportable) as long:
        classify("okx", "s" * 513)
    assert long.value.code == "secret_too_long" and "s" * 20 not in str(long.value)
    with pytest.raises(NotImportable) as kraken:
        classify("kraken", "not base64 !")
    assert kraken.value.code == "secret_format"
    with pytest.raises(NotImportable):
        classify(
            "coinbase", "-----BEGIN EC PRIVATE KEY-----\nnot a key\n-----END EC PRIVATE KEY-----"
        )


async def test_intake_refuses_an_unimportable_secret_and_stores_nothing(
    devvault: Any, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the broker: the exchange accepts the key, Transit cannot hold it -> 422
    secret_not_importable and no KV entry; with CUSTODY_FALLBACK_KV it is kept in KV."""
    import broker.intake as intake_module
    from tests.fixtures.broker import build_broker_env

    original = intake_module.Intake._inspect
    key = sandbox.key("okx", "read_only")
    long_secret = key.secret * 17  # 544 bytes: beyond Transit's 512-byte HMAC keys
    for fallback in (False, True):
        env = build_broker_env(
            devvault.addr,
            devvault.root_token,
            sandbox.exchange_urls,
            site_custody="transit",
            custody_fallback_kv=fallback,
        )
        try:

            async def accept_any(self: Any, exchange: str, role: str, credentials: Any) -> Any:
                # The sandbox knows the 32-byte secret; the exchange accepting a long one
                # is what this test assumes.
                real = Credentials(key.api_key, key.secret, key.passphrase)
                return await original(self, exchange, role, real)

            monkeypatch.setattr(intake_module.Intake, "_inspect", accept_any)
            with env.http("intake") as http:
                answer = http.put(
                    "/v1/accounts/alice/keys/okx/site",
                    json={
                        "name": "long",
                        "api_key": key.api_key,
                        "secret": long_secret,
                        "passphrase": key.passphrase,
                    },
                )
            monkeypatch.undo()
            stored = env.read_key("site", "alice", "okx")
            if fallback:
                assert answer.status_code == 201, answer.text
                assert stored is not None and stored["secret"] == long_secret
            else:
                assert answer.status_code == 422, answer.text
                assert answer.json()["reasons"][0]["code"] == "secret_not_importable"
                assert long_secret not in answer.text
                assert stored is None
                rejected = [
                    line for line in env.audit_lines() if line.get("event") == "key.rejected"
                ]
                assert rejected and rejected[-1]["reasons"] == ["secret_not_importable"]
                assert long_secret not in env.audit.text()
        finally:
            env.running.stop()


def test_the_broker_policy_cannot_make_a_key_leave_vault(
    vault_client: hvac.Client, sandbox: SandboxServer
) -> None:
    """Parameter limits in keybroker-broker-transit: import with exportable or plaintext
    backup, and a config write other than deletion_allowed, get 403."""
    from broker.bootstrap import create_caller_token
    from broker.custody.byok import HASH_FUNCTION, wrap_for_import
    from broker.layout import BROKER_POLICY, BROKER_TRANSIT_POLICY

    apply_layout(vault_client, build_layout())
    token = create_caller_token(vault_client, [BROKER_POLICY, BROKER_TRANSIT_POLICY], "10m")
    broker = hvac.Client(url=vault_client.url, token=token)
    name = unique_name("robot-acct") + "-okx"
    pem = broker.read(f"{MOUNT}/wrapping_key")["data"]["public_key"]
    body = {"ciphertext": wrap_for_import(b"k" * 32, pem), "hash_function": HASH_FUNCTION}
    for extra in ({"exportable": True}, {"allow_plaintext_backup": True}):
        with pytest.raises(hvac.exceptions.Forbidden):
            broker.write_data(f"{MOUNT}/keys/{name}/import", data={**body, "type": "hmac", **extra})
    broker.write_data(f"{MOUNT}/keys/{name}/import", data={**body, "type": "hmac"})
    for extra in ({"exportable": True}, {"allow_plaintext_backup": True}):
        with pytest.raises(hvac.exceptions.Forbidden):
            broker.write_data(f"{MOUNT}/keys/{name}/config", data=extra)
    broker.write_data(f"{MOUNT}/keys/{name}/config", data={"deletion_allowed": True})
    assert vault_client.read(f"{MOUNT}/keys/{name}")["data"]["exportable"] is False
    broker.delete(f"{MOUNT}/keys/{name}")
