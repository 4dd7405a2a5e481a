"""KuCoin: GET /api/v1/user/api-key (docs/facts/exchanges.md, KuCoin).

Quirks: `ipWhitelist` entries are masked (`203.**.154`) and kept as reported (the rules
treat them cautiously); `Transfer` covers moving funds out, withdrawals included;
`InnerTransfer` is FlexTransfer between own accounts; the IP refusal 400006 comes out
of ccxt as a plain AuthenticationError.
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
from broker.exchanges.errors import CLOCK_SKEW, WRONG_PASSPHRASE, WRONG_SECRET
from broker.reasons import Inspection, Permissions, ReasonCode


class KucoinAdapter(Adapter):
    id = "kucoin"
    requires_passphrase = True
    error_codes = {
        "400001": ReasonCode.INVALID_CREDENTIALS,
        "400003": ReasonCode.INVALID_CREDENTIALS,
        "400004": ReasonCode.INVALID_CREDENTIALS,
        "400005": ReasonCode.INVALID_CREDENTIALS,
        "411100": ReasonCode.INVALID_CREDENTIALS,
        "400006": ReasonCode.IP_NOT_ALLOWED,
        "400007": ReasonCode.READ_DISABLED,
        "429000": ReasonCode.RATE_LIMITED,
        "400002": ReasonCode.EXCHANGE_UNAVAILABLE,
        "500000": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "400004": WRONG_PASSPHRASE,
        "400005": WRONG_SECRET,
        "411100": "the account is frozen",
        "400002": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.private_get_user_api_key())


def parse(answer: Any) -> Inspection:
    data = require_dict(payload(answer, "user/api-key", ok="200000"), "user/api-key data")
    perms = set(split_list(data.get("permission")))
    restricted, ips = whitelist(data.get("ipWhitelist"))
    return Inspection(
        exchange="kucoin",
        permissions=Permissions(
            read="General" in perms,
            spot_trade="Spot" in perms,
            margin="Margin" in perms,
            futures="Futures" in perms,
            withdraw="Transfer" in perms,  # "transfer funds (including ... withdrawal)"
            transfer=bool(perms & {"Transfer", "InnerTransfer"}),
        ),
        ip_restricted=restricted,
        ip_whitelist=ips,
    )
