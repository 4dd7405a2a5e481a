"""Every supported exchange, by ccxt id (Checkov-style: one registry, one class each)."""

from __future__ import annotations

from broker.exchanges.base import Adapter
from broker.exchanges.binance import BinanceAdapter
from broker.exchanges.bingx import BingxAdapter
from broker.exchanges.bitget import BitgetAdapter
from broker.exchanges.bybit import BybitAdapter
from broker.exchanges.coinbase import CoinbaseAdapter
from broker.exchanges.deribit import DeribitAdapter
from broker.exchanges.gate import GateAdapter
from broker.exchanges.htx import HtxAdapter
from broker.exchanges.kraken import KrakenAdapter
from broker.exchanges.kucoin import KucoinAdapter
from broker.exchanges.mexc import MexcAdapter
from broker.exchanges.okx import OkxAdapter

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
