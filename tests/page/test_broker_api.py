"""The key page's client of the broker API (broker/site/broker_api.py)."""

from __future__ import annotations

import socket

import pytest

from broker.site.broker_api import BrokerApi, BrokerUnavailable, Submission

TOKEN = "CANARY-INTAKE-TOKEN-9"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_broker_that_does_not_answer_gives_a_typed_error_without_secrets() -> None:
    api = BrokerApi(f"http://127.0.0.1:{_closed_port()}", TOKEN, timeout=2)
    submission = Submission("main", "CANARY-KEY", "CANARY-SECRET", "CANARY-PASS")
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            await api.put_key("alice", "okx", "robot", submission)
    finally:
        await api.aclose()
    for text in (str(caught.value), repr(api), repr(submission)):
        assert "CANARY" not in text


def test_identifiers_are_quoted_into_the_path() -> None:
    api = BrokerApi("http://broker/", TOKEN, timeout=1)
    assert api._key_url("a/..", "x?y", "site") == "http://broker/v1/accounts/a%2F../keys/x%3Fy/site"
