"""OKX: GET /api/v5/account/config (docs/facts/exchanges.md, OKX).

Quirks: `perm` has no futures/margin split. The account mode `acctLv` decides what a
`trade` key can reach: 1 = spot mode (spot only); 2, 3, 4 = spot-and-futures,
multi-currency margin, portfolio margin (margin and derivatives too). Some errors
(50119 unknown key, 50120 no permission) come out of ccxt as plain ExchangeError.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    payload,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_PASSPHRASE, WRONG_SECRET, unexpected_shape
from broker.reasons import Inspection, Permissions, ReasonCode

# Appended to a futures refusal: OKX keys have no futures switch of their own.
HINTS = {
    ReasonCode.FUTURES_ENABLED: "on OKX a trade key reaches futures and margin whenever the "
    "account mode is above spot (acctLv 2-4); an account in spot mode gives it spot only"
}


class OkxAdapter(Adapter):
    id = "okx"
    requires_passphrase = True
    error_codes = {
        "50111": ReasonCode.INVALID_CREDENTIALS,
        "50119": ReasonCode.INVALID_CREDENTIALS,
        "50113": ReasonCode.INVALID_CREDENTIALS,
        "50114": ReasonCode.INVALID_CREDENTIALS,
        "50105": ReasonCode.INVALID_CREDENTIALS,
        "50101": ReasonCode.INVALID_CREDENTIALS,
        "50100": ReasonCode.INVALID_CREDENTIALS,
        "50103": ReasonCode.INVALID_CREDENTIALS,
        "50104": ReasonCode.INVALID_CREDENTIALS,
        "50106": ReasonCode.INVALID_CREDENTIALS,
        "50107": ReasonCode.INVALID_CREDENTIALS,
        "50110": ReasonCode.IP_NOT_ALLOWED,
        "50121": ReasonCode.IP_NOT_ALLOWED,
        "50120": ReasonCode.READ_DISABLED,
        "50030": ReasonCode.READ_DISABLED,
        "50011": ReasonCode.RATE_LIMITED,
        "50013": ReasonCode.EXCHANGE_UNAVAILABLE,
        "50001": ReasonCode.EXCHANGE_UNAVAILABLE,
        "50026": ReasonCode.EXCHANGE_UNAVAILABLE,
        "50102": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "50105": WRONG_PASSPHRASE,
        "50113": WRONG_SECRET,
        "50101": "Invalid key: the key belongs to another environment (demo vs live)",
        "50100": "the key is frozen",
        "50102": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_get_account_config())


def parse(answer: Any) -> Inspection:
    data = payload(answer, "account/config", ok="0")
    if not isinstance(data, list) or not data:
        raise InspectionFailed(unexpected_shape("account/config data"))
    config = require_dict(data[0], "account/config data[0]")
    perms = set(split_list(config.get("perm")))
    trade = "trade" in perms
    beyond_spot = str(config.get("acctLv", "")) != "1"
    restricted, ips = whitelist(config.get("ip"))
    return Inspection(
        exchange="okx",
        permissions=Permissions(
            read="read_only" in perms,
            spot_trade=trade,
            margin=trade and beyond_spot,
            futures=trade and beyond_spot,
            withdraw="withdraw" in perms,
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
        hints=HINTS,
    )
