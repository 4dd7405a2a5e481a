"""Hostile clients and input that can never succeed (issue 17).

- a connection that never finishes its headers, or declares a body and never sends it,
  is dropped (408 for the body) within the documented timeout, before authentication;
- connections waiting for headers are capped (one more gets 503 at once);
- a body that is not application/json gets 415;
- control characters in any credential field get 400 before any exchange call (before
  issue 17: 503 exchange_unavailable with Retry-After on 10 of 12 exchanges);
- an unknown JSON field name is never echoed (it may be a secret);
- a caller over its request rate gets 429 with Retry-After, counted in /metrics;
- Go-style durations are accepted for ttl.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker
from broker.config import DEFAULT_EXCHANGES
from tests.broker.helpers import assert_envelope, check_body, key_body
from tests.fixtures.broker import BrokerEnv, _endpoint, build_broker_env, new_account

TIMEOUT = 0.5
CAP = 4


@pytest.fixture(scope="module")
def guarded(vault_endpoint: Any, sandbox: Any) -> Iterator[BrokerEnv]:
    """A broker with short pre-authentication timeouts, a small cap and a caller limit."""
    addr, token = _endpoint(vault_endpoint)
    env = build_broker_env(
        addr,
        token,
        sandbox.exchange_urls,
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        max_unauthenticated=CAP,
    )
    yield env
    env.running.stop()


def _connect(env: BrokerEnv) -> socket.socket:
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server answers or closes, and what it sent."""
    started = time.monotonic()
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def test_headers_that_never_end_are_cut_off(guarded: BrokerEnv) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"GET /v1/accounts/x/keys HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elapsed, _ = _closed_after(sock)
    assert TIMEOUT * 0.8 <= elapsed < TIMEOUT + 1.5


def test_a_silent_connection_is_cut_off(guarded: BrokerEnv) -> None:
    with _connect(guarded) as sock:
        elapsed, _ = _closed_after(sock)
    assert elapsed < TIMEOUT + 1.5


def test_a_declared_body_that_never_comes_gets_408(guarded: BrokerEnv) -> None:
    with _connect(guarded) as sock:
        sock.sendall(
            b"PUT /v1/accounts/a/keys/binance/site HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        elapsed, answer = _closed_after(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
    assert b'"request_timeout"' in answer
    assert elapsed < TIMEOUT + 1.5


def test_connections_waiting_for_headers_are_capped(guarded: BrokerEnv) -> None:
    idle = [_connect(guarded) for _ in range(CAP)]
    try:
        time.sleep(0.1)
        with _connect(guarded) as extra:
            elapsed, answer = _closed_after(extra)
        assert answer.startswith(b"HTTP/1.1 503") and b"server_busy" in answer
        assert elapsed < TIMEOUT  # refused at once, not after the timeout
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.1)
    with guarded.http() as http:  # the slots are free again
        assert http.get(f"/v1/accounts/{new_account()}/keys").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/accounts/acct/keys/binance/site"),
        ("POST", "/v1/keys/check"),
        ("POST", "/v1/site-tokens"),
    ],
)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_bodies_must_be_json(broker_env: BrokerEnv, method, path, content_type) -> None:
    headers = {"Authorization": f"Bearer {broker_env.both_token}"}
    if content_type:
        headers["Content-Type"] = content_type
    with broker_env.http(None) as http:
        response = http.request(method, path, content=b'{"ttl": "5m"}', headers=headers)
    assert_envelope(response, 415, "unsupported_media_type")


def test_json_with_a_charset_is_json(broker_env: BrokerEnv) -> None:
    with broker_env.http("site_backend") as http:
        response = http.post(
            "/v1/site-tokens",
            content=b'{"ttl": "5m"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("exchange", DEFAULT_EXCHANGES)
@pytest.mark.parametrize(
    ("field", "bad"),
    [("api_key", "\x01"), ("api_key", "\n"), ("secret", "\x7f"), ("passphrase", "\x1b[0m")],
)
def test_control_characters_in_credentials_are_400_before_any_exchange_call(
    broker_env: BrokerEnv, fresh_sandbox, exchange, field, bad
) -> None:
    key = next(iter(fresh_sandbox.keys[exchange].values()))
    body = key_body(key)
    body.setdefault("passphrase", "pass")
    body[field] = body[field][:8] + bad + body[field][8:]
    with broker_env.http() as http:
        put = http.put(f"/v1/accounts/{new_account()}/keys/{exchange}/site", json=body)
        check = http.post("/v1/keys/check", json={**check_body(key, "site"), field: body[field]})
    for response in (put, check):
        error = assert_envelope(response, 400, "invalid_request")
        assert field in error["message"] and "retry-after" not in response.headers
    assert fresh_sandbox.request_count(body["api_key"]) == 0


@pytest.mark.parametrize(("exchange", "label"), [("binance", "rsa"), ("coinbase", "cdp")])
def test_pem_secrets_keep_their_line_breaks(
    broker_env: BrokerEnv, fresh_sandbox, exchange, label
) -> None:
    key = fresh_sandbox.key(exchange, label)
    assert "\n" in key.secret
    with broker_env.http() as http:
        response = http.post("/v1/keys/check", json=check_body(key, "site"))
    assert response.status_code == 200, response.text  # checked, not refused as input


def test_unknown_field_names_are_never_echoed(broker_env: BrokerEnv, fresh_sandbox) -> None:
    """Before issue 17 an identifier-like name of up to 32 characters came back."""
    key = fresh_sandbox.key("binance", "read_only")
    secret_as_name = "sK3cr3tLooksLikeAnIdent"
    with broker_env.http() as http:
        response = http.put(
            f"/v1/accounts/{new_account()}/keys/binance/site",
            json={**key_body(key), secret_as_name: "x"},
        )
    body = assert_envelope(response, 400, "invalid_request")
    assert secret_as_name not in response.text
    assert "unknown field" in body["message"]


def test_a_caller_over_its_rate_gets_429(vault_endpoint: Any, sandbox: Any) -> None:
    addr, token = _endpoint(vault_endpoint)
    env = build_broker_env(addr, token, sandbox.exchange_urls, caller_rate=2, caller_burst=3)
    try:
        with env.http() as http:
            answers = [http.get(f"/v1/accounts/{new_account()}/keys") for _ in range(6)]
            metrics = http.get("/metrics")  # may itself be limited: read it once the bucket refills
            time.sleep(1.0)
            metrics = http.get("/metrics")
    finally:
        env.running.stop()
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    limited = next(a for a in answers if a.status_code == 429)
    assert_envelope(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert 'keybroker_rate_limited_total{exchange="",scope="caller"}' in metrics.text


def test_go_durations_are_accepted_for_ttl(broker_env: BrokerEnv) -> None:
    if not (Path(broker.__file__).parent / "durations.py").exists():
        pytest.skip("broker/durations.py (the one duration parser) is not merged yet")
    with broker_env.http("site_backend") as http:
        response = http.post("/v1/site-tokens", json={"ttl": "14m59s"})
    assert response.status_code == 201, response.text
    assert response.json()["ttl"] == 899
