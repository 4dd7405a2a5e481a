"""Binance: GET /sapi/v1/account/apiRestrictions (docs/facts/exchanges.md, Binance).

Quirks: only `ipRestrict` is readable (the IP list endpoints were discontinued
2021-11-17), so the whitelist is never known; -2015 means "invalid key, IP or
permission" and Binance does not say which.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import Adapter, Credentials, from_timestamp, require_dict
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET
from broker.reasons import Inspection, Permissions, ReasonCode


class BinanceAdapter(Adapter):
    id = "binance"
    error_codes = {
        "-2015": ReasonCode.INVALID_CREDENTIALS,
        "-2014": ReasonCode.INVALID_CREDENTIALS,
        "-2008": ReasonCode.INVALID_CREDENTIALS,
        "-1022": ReasonCode.INVALID_CREDENTIALS,
        "-1002": ReasonCode.INVALID_CREDENTIALS,
        "-1003": ReasonCode.RATE_LIMITED,
        "-1021": ReasonCode.EXCHANGE_UNAVAILABLE,
        "-1001": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "-2015": "Binance refused the request (-2015): the API key is invalid, the broker's "
        "IP is not whitelisted, or the key lacks permission; Binance does not say which",
        "-1022": WRONG_SECRET,
        "-1021": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.sapi_get_account_apirestrictions())


def parse(answer: Any) -> Inspection:
    data = require_dict(answer, "apiRestrictions")
    flag = lambda name: data.get(name) is True  # noqa: E731 - absent means not granted
    spot = flag("enableSpotAndMarginTrading")
    permissions = Permissions(
        read=flag("enableReading"),
        # FIX API trading places orders too.
        spot_trade=spot or flag("enableFixApiTrade"),
        margin=flag("enableMargin"),
        futures=flag("enableFutures")
        or flag("enableVanillaOptions")
        or flag("enablePortfolioMarginTrading"),
        withdraw=flag("enableWithdrawals"),
        transfer=flag("enableInternalTransfer") or flag("permitsUniversalTransfer"),
    )
    expires_at = None
    # Spot trading of a key without whitelisted IPs lapses after 30 days.
    expiry_ms = data.get("tradingAuthorityExpirationTime")
    if spot and isinstance(expiry_ms, int | float) and expiry_ms > 0:
        expires_at = from_timestamp(expiry_ms / 1000, "tradingAuthorityExpirationTime")
    return Inspection(
        exchange="binance",
        permissions=permissions,
        ip_restricted=flag("ipRestrict"),
        ip_whitelist=None,  # not readable since 2021-11-17
        expires_at=expires_at,
    )
