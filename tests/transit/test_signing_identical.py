"""Requests signed through Vault are the requests ccxt signs holding the secret.

For every exchange and every signing scheme the sandbox knows (HMAC on all twelve, the
KuCoin v2 passphrase, Kraken's base64 secret, Binance RSA and Ed25519, Bybit RSA, Coinbase CDP ES256
and Ed25519), the secret is imported into Transit the way intake does it
(broker/custody/material.py + BYOK), and two ccxt objects sign the exchange's
self-inspection request with the same clock and nonces: one holding the secret, one
holding only a stand-in and asking Vault (broker/signing.py). The requests must be
byte-identical; ECDSA signatures are randomised, so there the JWT must be identical up to
its signature, which must verify under the key's public key. Then the Vault-signed
object calls the sandbox for real: the sandbox verifies the exchange's real signing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from broker.custody.material import classify
from broker.signing import TransitSigner, install, stand_in
from keybroker_dev.sandbox import SandboxKey, SandboxServer
from tests.sandbox.ccxt_client import _rewrite, client
from tests.sandbox.specs import BY_NAME
from tests.transit.conftest import TransitMount

CASES = [(exchange, "trade_whitelisted") for exchange in BY_NAME] + [
    ("kucoin", "key_v2"),  # passphrase HMAC'd with the secret
    ("binance", "rsa"),
    ("binance", "ed25519"),
    ("bybit", "rsa"),
    ("coinbase", "cdp"),  # ES256 JWT
    ("coinbase", "cdp_ed25519"),  # EdDSA JWT
]
FROZEN_MS = 1_764_806_400_123


def _freeze(instance: Any) -> None:
    """Same clock and same 'random' values for both signers."""
    instance.milliseconds = lambda: FROZEN_MS
    instance.seconds = lambda: FROZEN_MS // 1000
    instance.microseconds = lambda: FROZEN_MS * 1000
    instance.uuid = lambda: "00000000-0000-4000-8000-000000000000"
    instance.uuid22 = lambda length=22: "0" * length
    instance.uuid16 = lambda length=16: "0" * length
    instance.random_bytes = lambda length: "ab" * length


async def _capture(instance: Any, exchange: str, key: SandboxKey) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def fake_fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None):
        seen.append({"url": url, "method": method, "headers": dict(headers or {}), "body": body})
        return {}

    original = instance.fetch
    instance.fetch = fake_fetch
    try:
        spec = BY_NAME[exchange]
        await getattr(instance, spec.method)(spec.params(key))
    finally:
        instance.fetch = original
    return seen[0]


def _vault_signer(transit: TransitMount, name: str) -> TransitSigner:
    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return transit.client.write(f"{transit.path}/{path}", **body)["data"]

    return TransitSigner(call, name)


def _split_jwt(request: dict[str, Any]) -> tuple[str, bytes]:
    token = request["headers"]["Authorization"].removeprefix("Bearer ")
    signing_input, signature = token.rsplit(".", 1)
    return signing_input, base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))


@pytest.mark.parametrize(("exchange", "label"), CASES, ids=[f"{e}-{lbl}" for e, lbl in CASES])
async def test_vault_signed_request_is_the_ccxt_request(
    sandbox: SandboxServer, transit: TransitMount, exchange: str, label: str
) -> None:
    key = sandbox.key(exchange, label)
    form = classify(exchange, key.secret)
    transit.import_key("k", form.transit_type, form.material)
    url = sandbox.exchange_urls[exchange]
    local = client(exchange, url, key)
    secret = stand_in(form.scheme)
    remote = install(
        client(exchange, url, key, secret=secret), _vault_signer(transit, "k"), form.scheme, secret
    )
    try:
        for instance in (local, remote):
            _freeze(instance)
        expected = await _capture(local, exchange, key)
        got = await _capture(remote, exchange, key)
        assert key.secret not in json.dumps(got)
        if form.scheme == "cdp-es256":
            (want_input, _), (got_input, signature) = _split_jwt(expected), _split_jwt(got)
            assert got_input == want_input
            private = serialization.load_pem_private_key(key.secret.encode(), None)
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
            )
            private.public_key().verify(der, got_input.encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr, call-arg, arg-type]
            for request in (expected, got):
                request["headers"].pop("Authorization")
        assert got == expected

        # And for real: the sandbox verifies the Vault-made signature.
        remote_live = install(
            client(exchange, url, key, secret=secret),
            _vault_signer(transit, "k"),
            form.scheme,
            secret,
        )
        try:
            spec = BY_NAME[exchange]
            answer = await getattr(remote_live, spec.method)(spec.params(key))
            assert spec.rights(answer, key)[0] is True  # the trade right this key holds
        finally:
            await remote_live.close()
    finally:
        await local.close()
        await remote.close()


def test_sync_ccxt_signs_through_vault_too(sandbox: SandboxServer, transit: TransitMount) -> None:
    import ccxt

    key = sandbox.key("okx", "trade_whitelisted")
    form = classify("okx", key.secret)
    transit.import_key("k", form.transit_type, form.material)
    secret = stand_in(form.scheme)
    config = {"apiKey": key.api_key, "password": key.passphrase, "enableRateLimit": False}
    local = ccxt.okx({**config, "secret": key.secret})
    remote = install(
        ccxt.okx({**config, "secret": secret}), _vault_signer(transit, "k"), "hmac", secret
    )
    for instance in (local, remote):
        _freeze(instance)
        instance.urls["api"] = _rewrite(instance.urls["api"], sandbox.exchange_urls["okx"], None)
    want = local.sign("account/config", ["private"], "GET", {})
    assert want["headers"]["OK-ACCESS-SIGN"]
    assert remote.sign("account/config", ["private"], "GET", {}) == want
    live = install(
        ccxt.okx({**config, "secret": secret}), _vault_signer(transit, "k"), "hmac", secret
    )
    live.urls["api"] = remote.urls["api"]
    answer = live.private_get_account_config()
    assert BY_NAME["okx"].rights(answer, key)[0] is True


def test_other_keys_stay_local(transit: TransitMount) -> None:
    """ccxt's own constant keys (e.g. KuCoin's broker partner key) never go to Vault."""
    import ccxt

    calls: list[str] = []
    secret = stand_in("hmac")
    instance = install(
        ccxt.kucoin({"apiKey": "a", "secret": secret}),
        TransitSigner(lambda path, body: calls.append(path) or {}, "k"),  # type: ignore[func-returns-value]
        "hmac",
        secret,
    )
    assert instance.hmac(b"m", b"partner-secret") == ccxt.Exchange.hmac(b"m", b"partner-secret")
    assert calls == []


def test_short_hmac_secrets_are_padded_without_changing_any_mac(
    transit: TransitMount, vault_client: hvac.Client
) -> None:
    import hashlib
    import hmac

    secret = "short-secret-17ch"
    form = classify("mexc", secret)
    assert len(form.material) == 32
    transit.import_key("short", form.transit_type, form.material)
    signer = _vault_signer(transit, "short")
    for name, algorithm in (("sha2-256", hashlib.sha256), ("sha2-512", hashlib.sha512)):
        assert (
            signer.hmac(b"payload", name)
            == hmac.new(secret.encode(), b"payload", algorithm).digest()
        )


async def test_async_ccxt_asks_vault_off_the_event_loop(
    sandbox: SandboxServer, transit: TransitMount
) -> None:
    """Async ccxt: the Vault call runs in a worker thread, never on the loop's thread."""
    import threading

    key = sandbox.key("bybit", "trade_whitelisted")
    form = classify("bybit", key.secret)
    transit.import_key("k", form.transit_type, form.material)
    vault = _vault_signer(transit, "k")
    threads: list[int] = []

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return vault.call(path, body)

    secret = stand_in(form.scheme)
    url = sandbox.exchange_urls["bybit"]
    instance = install(
        client("bybit", url, key, secret=secret), TransitSigner(call, "k"), "hmac", secret
    )
    try:
        spec = BY_NAME["bybit"]
        await getattr(instance, spec.method)(spec.params(key))
    finally:
        await instance.close()
    assert threads and threading.get_ident() not in threads
