"""Bitget: GET /api/v2/spot/account/info (docs/facts/exchanges.md, Bitget).

Quirks: `authorities` codes end in `or` (read-only) or `ow` (read-write): `stow` spot,
`smow` margin, `coow`/`cpow` futures orders/holdings, `wtow` transfers, `wwow`
withdrawals; the docs example still shows legacy `trade`/`readonly`. `ips` is one
comma-separated string.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import (
    Adapter,
    Credentials,
    payload,
    require_dict,
    split_list,
    whitelist,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET
from broker.reasons import Inspection, Permissions, ReasonCode

_READ_CODES = {"stor", "coor", "cpor", "smor", "wtor", "ttor", "taxr", "chor", "p2pr", "pllr"}


class BitgetAdapter(Adapter):
    id = "bitget"
    requires_passphrase = True
    error_codes = {
        "40006": ReasonCode.INVALID_CREDENTIALS,
        "40037": ReasonCode.INVALID_CREDENTIALS,
        "40009": ReasonCode.INVALID_CREDENTIALS,
        "40010": ReasonCode.INVALID_CREDENTIALS,
        "40011": ReasonCode.INVALID_CREDENTIALS,
        "40012": ReasonCode.INVALID_CREDENTIALS,
        "40018": ReasonCode.IP_NOT_ALLOWED,
        "40014": ReasonCode.READ_DISABLED,
        "40004": ReasonCode.EXCHANGE_UNAVAILABLE,
        "40008": ReasonCode.EXCHANGE_UNAVAILABLE,
        "40005": ReasonCode.EXCHANGE_UNAVAILABLE,
        "429": ReasonCode.RATE_LIMITED,
    }
    error_messages = {
        "40009": WRONG_SECRET,
        "40012": "Invalid key: the key or passphrase was refused",
        "40004": CLOCK_SKEW,
        "40008": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_spot_get_v2_spot_account_info())


def parse(answer: Any) -> Inspection:
    data = require_dict(payload(answer, "account/info", ok="00000"), "account/info data")
    codes = set(split_list(data.get("authorities")))
    restricted, ips = whitelist(data.get("ips"))
    return Inspection(
        exchange="bitget",
        permissions=Permissions(
            read=bool(codes & _READ_CODES)
            or any(c.endswith("ow") for c in codes)
            or "readonly" in codes,
            spot_trade=bool(codes & {"stow", "trade"}),
            margin="smow" in codes,
            futures=bool(codes & {"coow", "cpow"}),
            withdraw="wwow" in codes,
            transfer="wtow" in codes,
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
