"""MEXC: no endpoint reads the calling key's own rights (docs/facts/exchanges.md, MEXC).

One signed GET /api/v3/account proves the key, secret and IP are accepted (so a wrong
secret still answers invalid_credentials), then the check answers `unverifiable`: its
`canTrade`/`canWithdraw` may describe the account rather than the key (unconfirmed), so
they are not presented as the key's rights. ccxt files 700006 (IP) as BadRequest.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import Adapter, Credentials, require_dict
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET, reason
from broker.reasons import Inspection, Permissions, ReasonCode


class MexcAdapter(Adapter):
    id = "mexc"
    error_codes = {
        "700001": ReasonCode.INVALID_CREDENTIALS,
        "700002": ReasonCode.INVALID_CREDENTIALS,
        "10072": ReasonCode.INVALID_CREDENTIALS,
        "602": ReasonCode.INVALID_CREDENTIALS,
        "700006": ReasonCode.IP_NOT_ALLOWED,
        "700007": ReasonCode.READ_DISABLED,
        "700003": ReasonCode.EXCHANGE_UNAVAILABLE,
        "700005": ReasonCode.EXCHANGE_UNAVAILABLE,
        "429": ReasonCode.RATE_LIMITED,
    }
    error_messages = {
        "700002": WRONG_SECRET,
        "700003": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        require_dict(await exchange.spot_private_get_account(), "account")
        return Inspection(
            exchange="mexc",
            permissions=Permissions(read=True),  # the signed read just succeeded
            blocking=[
                reason(
                    ReasonCode.UNVERIFIABLE,
                    self.id,
                    "MEXC offers no way to read an API key's rights or IP whitelist",
                )
            ],
        )
