"""Binance RSA/Ed25519 and Bybit RSA keys through the broker, under both custodies
(issue 13).

On the code before, the exchange check refused every PEM secret as `non_hmac_key` before
custody, so these keys never reached Transit (or KV) through the broker: every submission
below answered 422 and `test_asymmetric_robot_keys` failed at its first PUT. Now the
adapters inspect them (ccxt signs with `rsa()`/`eddsa()`, the sandbox verifies), and
intake keeps them as a Transit key (`rsa-2048` / `ed25519`) or in KV.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import RobotKeyClient
from broker.layout import layout_from_settings, transit_key_name
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import new_key
from tests.fixtures.broker import BrokerEnv, build_broker_env, new_account
from tests.transit.helpers import MOUNT, assert_no_secret, call_sandbox, private_parts

# (exchange, sandbox label) -> (scheme, Transit type) under `transit` custody
KINDS = {
    ("binance", "rsa"): ("rsa-pem", "rsa-2048"),
    ("binance", "ed25519"): ("ed25519-pem", "ed25519"),
    ("bybit", "rsa"): ("rsa-pem", "rsa-2048"),
}


def _env(devvault: Any, sandbox: SandboxServer, custody: str, **extra: Any) -> BrokerEnv:
    env = build_broker_env(
        devvault.addr,
        devvault.root_token,
        sandbox.exchange_urls,
        site_custody=custody,
        robot_custody=custody,
        **extra,
    )
    # The robot reaches this Vault from loopback, not from its exchange egress address.
    apply_layout(env.root, layout_from_settings(env.settings, robot_login_cidrs=("127.0.0.1/32",)))
    return env


@pytest.fixture(params=["transit", "kv"])
def env(request: Any, devvault: Any, sandbox: SandboxServer) -> Iterator[BrokerEnv]:
    broker = _env(devvault, sandbox, request.param)
    yield broker
    broker.running.stop()


def _put(env: BrokerEnv, account: str, key: Any) -> Any:
    with env.http("intake") as http:
        return http.put(
            f"/v1/accounts/{account}/keys/{key.exchange}/robot",
            json={"name": "asymmetric", **key.credentials()},
        )


@pytest.mark.parametrize(("exchange", "label"), sorted(KINDS))
async def test_asymmetric_robot_keys(
    env: BrokerEnv, sandbox: SandboxServer, exchange: str, label: str
) -> None:
    key = sandbox.key(exchange, label)
    account = new_account()
    answer = _put(env, account, key)
    assert answer.status_code == 201, answer.text
    assert_no_secret(answer.text, [key.secret], "the broker's answer")
    assert_no_secret(env.audit_lines(), [key.secret], "the audit lines")
    stored = env.read_key("robot", account, exchange)
    assert stored is not None
    if env.settings.robot_custody == "transit":
        scheme, transit_type = KINDS[(exchange, label)]
        assert "secret" not in stored and stored["scheme"] == scheme
        name = transit_key_name("robot", account, exchange)
        transit_key = env.root.read(f"{MOUNT}/keys/{name}")["data"]
        assert transit_key["type"] == transit_type and transit_key["exportable"] is False
        assert_no_secret(transit_key, [key.secret], "the Transit key")
    else:
        assert stored["secret"] == key.secret

    creds = issue_approle_credentials(env.root, "keybroker-robot")
    robot = RobotKeyClient(env.root.url, creds.role_id, creds.secret_id)
    instance = robot.signing_exchange(account, exchange, asynchronous=True)
    if env.settings.robot_custody == "transit":
        assert instance.secret != key.secret  # a stand-in; Vault signs
    # The sandbox verifies the RSA / Ed25519 signature over the real request.
    assert (await call_sandbox(instance, sandbox, exchange, key))[0] is True


def test_rsa_key_transit_cannot_hold(env: BrokerEnv, sandbox: SandboxServer) -> None:
    """A 1024-bit RSA key passes the exchange check but Transit imports 2048/3072/4096
    only: `transit` refuses it with a typed reason and stores nothing; `kv` keeps it."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = replace(sandbox.key("binance", "rsa"), label="rsa1024", secret=pem)
    key = replace(key, api_key=new_key("binance", "rsa1024").api_key)
    sandbox.add_key(key)
    account = new_account()
    answer = _put(env, account, key)
    if env.settings.robot_custody == "kv":
        assert answer.status_code == 201, answer.text
        return
    assert answer.status_code == 422, answer.text
    assert [r["code"] for r in answer.json()["reasons"]] == ["secret_not_importable"]
    assert pem not in answer.text
    assert env.read_key("robot", account, "binance") is None
    name = transit_key_name("robot", account, "binance")
    assert env.root.read(f"{MOUNT}/keys/{name}") is None


@pytest.mark.parametrize(
    ("exchange", "label"),
    [("binance", "rsa"), ("binance", "ed25519"), ("coinbase", "cdp"),
     ("coinbase", "cdp_ed25519"), ("kraken", "read_only"), ("okx", "read_only")],
)  # fmt: skip
def test_the_canary_scan_sees_each_kind_of_secret(
    sandbox: SandboxServer, exchange: str, label: str
) -> None:
    """The scan the custody story relies on finds a secret as a KV answer would show it
    (a JSON string), and its private bytes in base64 or hex, yet not its public key."""
    secret = sandbox.key(exchange, label).secret
    body = json.dumps({"data": {"data": {"secret": secret}}})
    with pytest.raises(AssertionError):
        assert_no_secret(body, [secret], "a kv record")
    for part in private_parts(secret):
        for shown in (base64.b64encode(part).decode(), part.hex()):
            with pytest.raises(AssertionError):
                assert_no_secret([shown], [secret], "an answer")
    if "PRIVATE KEY" in secret:
        public = serialization.load_pem_private_key(secret.encode(), None).public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert_no_secret(json.dumps({"public_key": pem.decode()}), [secret], "a Transit key")
