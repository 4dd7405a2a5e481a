"""MEXC: no endpoint reads the calling key's own rights (docs/facts/exchanges.md, MEXC), so
the check reads what MEXC does report and probes the rest without side effects.

1. `GET /api/v3/account` (needs SPOT_ACCOUNT_READ): succeeding proves the key, secret,
   IP and the read right. `canWithdraw` false means this key cannot withdraw either;
   true may describe the account rather than the key (unconfirmed), so withdrawing
   stays unverified.
2. `POST /api/v3/order/test` (needs SPOT_DEAL_WRITE): MEXC validates the order and never
   sends it to the matching engine. `{}` proves spot trading; 700007 ("no permission")
   disproves it. A refusal of the order itself (balance, size, symbol: ccxt InvalidOrder,
   InsufficientFunds, BadSymbol) does not say whether the permission check passed
   (unconfirmed), so spot trading stays unverified.

Transfers, futures and margin rights (SPOT_TRANSFER_WRITE, CONTRACT_*_WRITE) and the IP
whitelist cannot be read or probed without side effects: always unverified (the rules
refuse them as `unverifiable` unless KEYBROKER_ACCEPT_UNVERIFIABLE names mexc). ccxt
files 700006 (IP) and 10072 (unknown key) as BadRequest.
"""

from __future__ import annotations

from typing import Any

from broker.exchanges.base import Adapter, Credentials, error_body, require_dict
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET
from broker.reasons import Inspection, Permissions, ReasonCode

# A limit buy far below any BTC price, at a size above MEXC's minimum order value, so
# that it would validate; the test endpoint places nothing whatever its parameters.
PROBE_ORDER = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "0.001",
    "price": "10000",
}
NO_PERMISSION = "700007"
ALWAYS_UNVERIFIED = frozenset({"transfer", "futures", "margin"})


class MexcAdapter(Adapter):
    id = "mexc"
    requests_per_check = 2
    error_codes = {
        "700001": ReasonCode.INVALID_CREDENTIALS,
        "700002": ReasonCode.INVALID_CREDENTIALS,
        "10072": ReasonCode.INVALID_CREDENTIALS,
        "602": ReasonCode.INVALID_CREDENTIALS,
        "700006": ReasonCode.IP_NOT_ALLOWED,
        NO_PERMISSION: ReasonCode.READ_DISABLED,  # on /account: no SPOT_ACCOUNT_READ
        "700003": ReasonCode.EXCHANGE_UNAVAILABLE,
        "700005": ReasonCode.EXCHANGE_UNAVAILABLE,
        "429": ReasonCode.RATE_LIMITED,
    }
    error_messages = {
        "700002": WRONG_SECRET,
        "700003": CLOCK_SKEW,
    }

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        account = require_dict(await exchange.spot_private_get_account(), "account")
        spot_trade = await self._probe_spot_trade(exchange)
        return parse(account, spot_trade)

    async def _probe_spot_trade(self, exchange: Any) -> bool | None:
        """True/False from the test order; None when its answer does not tell."""
        import ccxt  # here, not at import time (~1 s)

        try:
            require_dict(await exchange.spot_private_post_order_test(dict(PROBE_ORDER)), "order")
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadSymbol):
            return None
        except ccxt.AuthenticationError as exc:
            if self.error_code(error_body(exc)) == NO_PERMISSION:
                return False
            raise
        return True


def parse(account: Any, spot_trade: bool | None) -> Inspection:
    """The inspection from the /account answer and the test order's verdict."""
    data = require_dict(account, "account")
    unverified = set(ALWAYS_UNVERIFIED)
    if data.get("canWithdraw") is not False:
        unverified.add("withdraw")
    if spot_trade is None:
        unverified.add("spot_trade")
    return Inspection(
        exchange="mexc",
        permissions=Permissions(read=True, spot_trade=spot_trade is True),
        ip_restricted=None,  # MEXC reports no whitelist for the calling key
        ip_whitelist=None,
        unverified=frozenset(unverified),
    )
