"""Hostile identifiers and bodies get 400/413 with the envelope, and nothing is stored.

Paths are sent byte for byte with http.client, so that `..`, `%2f` and friends reach the
server exactly as written (httpx would normalize some of them away).
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import quote, urlsplit

import hvac.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.broker.helpers import assert_envelope, key_body
from tests.fixtures.broker import BrokerEnv, new_account


class RawResponse:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status_code = status
        self.content = body
        self.text = body.decode(errors="replace")
        self.headers = headers

    def json(self) -> dict:
        return json.loads(self.content)


def raw_request(
    env: BrokerEnv, method: str, path: str, body: bytes | None = None, token: str = "intake"
) -> RawResponse:
    url = urlsplit(env.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {
        "Authorization": f"Bearer {env.intake_token if token == 'intake' else token}",
        "Content-Type": "application/json",
    }
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        response = conn.getresponse()
        return RawResponse(response.status, response.read(), dict(response.getheaders()))
    finally:
        conn.close()


HOSTILE_ACCOUNTS = [
    "..",
    "%2e%2e",
    ".",
    "a%2fb",
    "a%2Fb",
    "..%2f..%2fsite",
    "a%00",
    "a%0a",
    "a%09b",
    "a%5cb",
    "%d0%b0",  # Cyrillic a
    "%ef%bd%81",  # fullwidth a
    "a%e2%80%8b",  # zero-width space
    "a%e2%80%ae",  # right-to-left override
    "ACCT",
    "-a",
    "a" * 65,
    "a%20b",
]


@pytest.mark.parametrize("account", HOSTILE_ACCOUNTS)
def test_hostile_accounts_are_refused_and_nothing_is_stored(
    broker_env: BrokerEnv, sandbox, account: str
) -> None:
    body = json.dumps(key_body(sandbox.key("binance", "read_only"))).encode()
    before = broker_env.all_paths()
    response = raw_request(broker_env, "PUT", f"/v1/accounts/{account}/keys/binance/site", body)
    assert_envelope(response, 400, "invalid_request")
    assert broker_env.all_paths() == before
    listing = raw_request(broker_env, "GET", f"/v1/accounts/{account}/keys")
    assert_envelope(listing, 400, "invalid_request")


@pytest.mark.parametrize(
    ("exchange", "role"),
    [
        ("binance%2f..", "site"),
        ("..", "site"),
        ("BINANCE", "site"),
        ("kraken2", "site"),
        ("b%d1%96nance", "site"),  # Cyrillic i
        ("binance", "Site"),
        ("binance", "admin"),
        ("binance", "site%00"),
        ("binance", "site%2f..%2frobot"),
    ],
)
def test_hostile_exchange_and_role_are_refused(
    broker_env: BrokerEnv, sandbox, exchange: str, role: str
) -> None:
    account = new_account()
    before = broker_env.all_paths()
    body = json.dumps(key_body(sandbox.key("binance", "read_only"))).encode()
    response = raw_request(
        broker_env, "PUT", f"/v1/accounts/{account}/keys/{exchange}/{role}", body
    )
    assert_envelope(response, 400, "invalid_request")
    assert broker_env.all_paths() == before  # nothing anywhere in the mount, escaped or not


@pytest.mark.parametrize(
    "name", ["", "n" * 65, "a\u0000b", "a\nb", "\u001b[2J", "a\u202eb", "a\u200bb", " lead"]
)
def test_hostile_names_are_refused(broker_env: BrokerEnv, sandbox, name: str) -> None:
    account = new_account()
    body = key_body(sandbox.key("binance", "read_only"), name=name)
    with broker_env.http() as http:
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=body)
    assert_envelope(response, 400, "invalid_request")
    assert broker_env.account_paths(account) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b'{"name": "x"}',
        b'{"name": "x", "api_key": "k"}',
        b'{"name": "x", "api_key": 1, "secret": "s"}',
        b'{"name": "x", "api_key": "k", "secret": "s", "extra": 1}',
        b'{"name": "x", "api_key": "", "secret": "s"}',
        b'{"name": "x", "api_key": "k\\u0000", "secret": "s"}',
        b"\xff\xfe{}",
    ],
)
def test_malformed_bodies_get_400_and_nothing_stored(broker_env: BrokerEnv, body: bytes) -> None:
    account = new_account()
    response = raw_request(broker_env, "PUT", f"/v1/accounts/{account}/keys/binance/site", body)
    assert_envelope(response, 400, "invalid_request")
    assert broker_env.account_paths(account) == []


def test_bodies_over_16_kib_get_413(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "read_only")
    big = {**key_body(key), "name": "x"}
    big["secret"] = key.secret + " " * (16 * 1024)
    with broker_env.http() as http:
        declared = http.put(f"/v1/accounts/{account}/keys/binance/site", json=big)
        assert_envelope(declared, 413, "payload_too_large")

        def chunks():
            yield b'{"name": "x", "api_key": "k", "secret": "'
            for _ in range(20):
                yield b"s" * 1024
            yield b'"}'

        chunked = http.put(f"/v1/accounts/{account}/keys/binance/site", content=chunks())
        assert_envelope(chunked, 413, "payload_too_large")
        assert_envelope(
            http.post("/v1/site-tokens", content=b"{" + b" " * 17000 + b"}"),
            413,
            "payload_too_large",
        )
        # The broker keeps serving.
        assert http.get("/healthz").status_code == 200
    assert broker_env.account_paths(account) == []


def test_unknown_exchange_key_is_refused_by_the_exchange_not_stored(
    broker_env: BrokerEnv,
) -> None:
    account = new_account()
    body = {"name": "x", "api_key": "a" * 32, "secret": "b" * 32}
    with broker_env.http() as http:
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=body)
    reasons = assert_envelope(response, 422, "key_rejected")["reasons"]
    assert "invalid_credentials" in {r["code"] for r in reasons}
    assert broker_env.account_paths(account) == []


def _accounts(env: BrokerEnv) -> set[str]:
    """Every account entry under site/ and robot/ (two LIST calls, whatever the size)."""
    found = set()
    for role in ("site", "robot"):
        try:
            keys = env.root.secrets.kv.v2.list_secrets(role, mount_point=env.mount)
        except hvac.exceptions.InvalidPath:
            continue
        found |= {f"{role}/{k}" for k in keys["data"]["keys"]}
    return found


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    account=st.one_of(
        st.text(min_size=0, max_size=70),
        st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
        st.text(alphabet="./%2fFeE\\\x00 -_a", max_size=12),
    )
)
def test_any_account_is_refused_or_stored_at_exactly_its_own_path(
    broker_env: BrokerEnv, sandbox, account: str
) -> None:
    """Property: whatever the client sends as an account, the broker either refuses it
    with 400 and writes nothing, or stores the key at site/<that account>/binance."""
    body = json.dumps(key_body(sandbox.key("binance", "read_only"))).encode()
    before = _accounts(broker_env)
    encoded = quote(account, safe="")
    response = raw_request(broker_env, "PUT", f"/v1/accounts/{encoded}/keys/binance/site", body)
    after = _accounts(broker_env)
    if response.status_code == 400:
        assert after == before
        return
    assert response.status_code in (200, 201), response.text
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", account, flags=re.ASCII)
    assert after - before <= {f"site/{account}/"}
    assert broker_env.account_paths(account) == [f"site/{account}/binance"]
