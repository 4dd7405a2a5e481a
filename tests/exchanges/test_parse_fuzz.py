"""Whatever an exchange (or something posing as one) answers, an adapter either
normalizes it or refuses it with a typed reason: never an unhandled exception, never
rights it did not see. Bodies are arbitrary JSON plus near-miss documented shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.exchanges import (
    binance,
    bingx,
    bitget,
    bybit,
    coinbase,
    deribit,
    gate,
    htx,
    kraken,
    kucoin,
    okx,
)
from broker.exchanges.base import InspectionFailed
from broker.reasons import Inspection

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

KEY = "0123456789abcdef"
PARSERS: dict[str, Callable[[Any], Inspection]] = {
    "binance": binance.parse,
    "okx": okx.parse,
    "bybit": bybit.parse,
    "kucoin": kucoin.parse,
    "gate": lambda body: gate.parse(body, KEY),
    "bitget": bitget.parse,
    "htx": lambda body: htx.parse(body, KEY),
    "bingx": bingx.parse,
    "kraken": kraken.parse,
    "coinbase": coinbase.parse,
    "deribit": lambda body: deribit.parse(body, KEY),
    "deribit-auth": deribit.parse_auth,
}

# Documented envelopes with an arbitrary payload where the data goes.
ENVELOPES: dict[str, Callable[[Any], Any]] = {
    "binance": lambda v: v,
    "okx": lambda v: {"code": "0", "data": [v]},
    "bybit": lambda v: {"retCode": 0, "result": v},
    "kucoin": lambda v: {"code": "200000", "data": v},
    "gate": lambda v: [v],
    "bitget": lambda v: {"code": "00000", "data": v},
    "htx": lambda v: {"code": 200, "data": [v]},
    "bingx": lambda v: {"code": 0, "data": v},
    "kraken": lambda v: {"error": [], "result": v},
    "deribit": lambda v: {"result": [v]},
    "deribit-auth": lambda v: {"result": v},
}


def outcome(name: str, body: Any) -> None:
    try:
        result = PARSERS[name](body)
    except InspectionFailed as refused:
        assert refused.reason.severity == "error"
        return
    assert isinstance(result, Inspection)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(PARSERS)), json_values)
def test_any_body(name: str, body: Any) -> None:
    outcome(name, body)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(ENVELOPES)),
    st.dictionaries(
        st.sampled_from(
            ["perm", "ip", "acctLv", "readOnly", "permissions", "ips", "expiredAt", "permission",
             "ipWhitelist", "perms", "ip_whitelist", "key", "state", "authorities", "accessKey",
             "ipAddresses", "validDays", "status", "validUntil", "ipAllowlist", "client_id",
             "max_scope", "enabled", "scope", "tradingAuthorityExpirationTime",
             "enableSpotAndMarginTrading"]
        ),
        json_values,
        max_size=6,
    ),
)  # fmt: skip
def test_near_miss_documented_shapes(name: str, payload: dict[str, Any]) -> None:
    for owner in ("key", "accessKey", "client_id"):
        if owner in payload:
            payload[owner] = KEY  # make it "our" entry so its fields get parsed
    outcome(name, ENVELOPES[name](payload))


def test_absurd_times_are_refused_not_crashes() -> None:
    cases = [
        ("binance", {"enableSpotAndMarginTrading": True, "tradingAuthorityExpirationTime": 10**30}),
        ("kraken", {"error": [], "result": {"validUntil": str(10**30)}}),
        ("htx", {"code": 200, "data": [{"accessKey": KEY, "validDays": 10**9}]}),
    ]
    for name, body in cases:
        with pytest.raises(InspectionFailed) as refused:
            PARSERS[name](body)
        assert refused.value.reason.code == "exchange_unavailable"
