"""Every supported exchange, by ccxt id (Checkov-style: one registry, one class each)."""

from __future__ import annotations

from broker.exchanges import ccxt_loader

# Adapters may import ccxt at module level; the lazy packages must be in place first.
ccxt_loader.install()

from broker.exchanges.base import Adapter  # noqa: E402
from broker.exchanges.binance import BinanceAdapter  # noqa: E402
from broker.exchanges.bingx import BingxAdapter  # noqa: E402
from broker.exchanges.bitget import BitgetAdapter  # noqa: E402
from broker.exchanges.bybit import BybitAdapter  # noqa: E402
from broker.exchanges.coinbase import CoinbaseAdapter  # noqa: E402
from broker.exchanges.deribit import DeribitAdapter  # noqa: E402
from broker.exchanges.gate import GateAdapter  # noqa: E402
from broker.exchanges.htx import HtxAdapter  # noqa: E402
from broker.exchanges.kraken import KrakenAdapter  # noqa: E402
from broker.exchanges.kucoin import KucoinAdapter  # noqa: E402
from broker.exchanges.mexc import MexcAdapter  # noqa: E402
from broker.exchanges.okx import OkxAdapter  # noqa: E402

ADAPTERS: dict[str, Adapter] = {
    adapter.id: adapter
    for adapter in (
        BinanceAdapter(),
        OkxAdapter(),
        BybitAdapter(),
        KucoinAdapter(),
        GateAdapter(),
        BitgetAdapter(),
        HtxAdapter(),
        BingxAdapter(),
        KrakenAdapter(),
        MexcAdapter(),
        CoinbaseAdapter(),
        DeribitAdapter(),
    )
}


def get_adapter(exchange_id: str) -> Adapter | None:
    return ADAPTERS.get(exchange_id)
