"""Every sandboxed exchange, by ccxt id."""

from __future__ import annotations

from broker.sandbox.base import ExchangeSim
from broker.sandbox.binance import Binance
from broker.sandbox.bingx import Bingx
from broker.sandbox.bitget import Bitget
from broker.sandbox.bybit import Bybit
from broker.sandbox.coinbase import Coinbase
from broker.sandbox.deribit import Deribit
from broker.sandbox.gate import Gate
from broker.sandbox.htx import Htx
from broker.sandbox.kraken import Kraken
from broker.sandbox.kucoin import Kucoin
from broker.sandbox.mexc import Mexc
from broker.sandbox.okx import Okx

SIMULATORS: dict[str, ExchangeSim] = {
    sim.name: sim
    for sim in (
        Binance(),
        Okx(),
        Bybit(),
        Kucoin(),
        Gate(),
        Bitget(),
        Htx(),
        Bingx(),
        Kraken(),
        Mexc(),
        Coinbase(),
        Deribit(),
    )
}
