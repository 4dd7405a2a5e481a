"""Whatever arrives, each exchange module answers with one of its own refusals: never an
exception, never a 5xx (5xx is reserved for injected faults), never a success."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from keybroker_dev.sandbox.base import Refusal, SandboxRequest
from keybroker_dev.sandbox.catalog import SIMULATORS
from keybroker_dev.sandbox.keys import default_keys
from keybroker_dev.sandbox.state import SandboxState

# Headers and parameters the twelve exchanges read, so the fuzzer reaches their parsers.
AUTH_NAMES = [
    "X-MBX-APIKEY", "OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP",
    "OK-ACCESS-PASSPHRASE", "X-BAPI-API-KEY", "X-BAPI-SIGN", "X-BAPI-TIMESTAMP",
    "X-BAPI-RECV-WINDOW", "KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP",
    "KC-API-PASSPHRASE", "KC-API-KEY-VERSION", "KEY", "SIGN", "Timestamp", "ACCESS-KEY",
    "ACCESS-SIGN", "ACCESS-TIMESTAMP", "ACCESS-PASSPHRASE", "X-BX-APIKEY", "API-Key",
    "API-Sign", "X-MEXC-APIKEY", "CB-ACCESS-KEY", "CB-ACCESS-SIGN", "CB-ACCESS-TIMESTAMP",
    "Authorization",
]  # fmt: skip
PARAMS = [
    "timestamp", "recvWindow", "signature", "AccessKeyId", "SignatureMethod",
    "SignatureVersion", "Timestamp", "Signature", "uid", "accessKey", "nonce",
    "grant_type", "client_id", "client_secret", "data",
]  # fmt: skip

text = st.text(alphabet=string.printable + "é漢\u0663²", max_size=40)
values = st.one_of(
    text,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(
        ["HmacSHA256", "2", "Bearer a.b.c", "deri-hmac-sha256 id=x,ts=1,sig=2,nonce=3"]
    ),
)
STATE = SandboxState(default_keys())
ENDPOINTS = [
    (name, method, path) for name, sim in SIMULATORS.items() for method, path in sim.endpoints
]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    headers=st.dictionaries(st.sampled_from(AUTH_NAMES), values, max_size=6),
    params=st.lists(st.tuples(st.sampled_from(PARAMS), values), max_size=6),
    body=st.binary(max_size=64),
)
def test_garbage_gets_the_exchanges_own_refusal(
    endpoint: tuple[str, str, str],
    headers: dict[str, str],
    params: list[tuple[str, str]],
    body: bytes,
) -> None:
    exchange, method, path = endpoint
    from urllib.parse import quote

    request = SandboxRequest(
        exchange=exchange,
        method=method,
        path=path,
        raw_query="&".join(f"{quote(k)}={quote(v)}" for k, v in params),
        headers=CIMultiDict(headers),
        body=body,
        host="127.0.0.1:8300",
        client_ip="203.0.113.10",
    )
    sim = SIMULATORS[exchange]
    STATE.count(sim.presented_key(request))
    reply = sim.respond(request, STATE)
    assert reply.status < 500
    refusals = [sim.refusal(refusal, request) for refusal in Refusal]
    assert reply in refusals


def test_every_exchange_renders_every_refusal() -> None:
    request = SandboxRequest("x", "GET", "/", "", CIMultiDict(), b"", "h", "203.0.113.10")
    for sim in SIMULATORS.values():
        for refusal in Refusal:
            reply = sim.refusal(refusal, request)
            assert 200 <= reply.status < 600
            if refusal not in (Refusal.UNAVAILABLE, Refusal.RATE_LIMITED, Refusal.NOT_FOUND):
                assert reply.status < 500  # refusals of the caller are never server faults
