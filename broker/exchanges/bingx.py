"""BingX: GET /openApi/v1/account/apiPermissions (docs/facts/exchanges.md, BingX).

Quirks: `permissions` is a list of numbers (1 spot trading, 2 reading, 3 perpetual
futures, 4 universal transfer, 5 withdrawal, 7 sub-account transfer); ccxt files
100421 (timestamp) as BadSymbol and 100410 (rate limit) as OperationFailed.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    InspectionFailed,
    payload,
    require_dict,
    whitelist,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET, unexpected_shape
from broker.reasons import Inspection, Permissions, ReasonCode


class BingxAdapter(Adapter):
    id = "bingx"
    error_codes = {
        "100413": ReasonCode.INVALID_CREDENTIALS,
        "100001": ReasonCode.INVALID_CREDENTIALS,
        "100412": ReasonCode.INVALID_CREDENTIALS,
        "100419": ReasonCode.IP_NOT_ALLOWED,
        "100004": ReasonCode.READ_DISABLED,
        "100410": ReasonCode.RATE_LIMITED,
        "429": ReasonCode.RATE_LIMITED,
        "100421": ReasonCode.EXCHANGE_UNAVAILABLE,
        "80014": ReasonCode.EXCHANGE_UNAVAILABLE,
        "100500": ReasonCode.EXCHANGE_UNAVAILABLE,
        "80012": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "100001": WRONG_SECRET,
        "100421": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.account_v1_private_get_account_apipermissions())


def parse(answer: Any) -> Inspection:
    data = require_dict(payload(answer, "apiPermissions", ok="0"), "apiPermissions data")
    raw = data.get("permissions")
    if not isinstance(raw, list):
        raise InspectionFailed(unexpected_shape("apiPermissions permissions"))
    perms = {str(p) for p in raw}
    restricted, ips = whitelist(data.get("ipAddresses"))
    return Inspection(
        exchange="bingx",
        permissions=Permissions(
            read="2" in perms,
            spot_trade="1" in perms,
            futures="3" in perms,
            withdraw="5" in perms,
            transfer=bool(perms & {"4", "7"}),
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
