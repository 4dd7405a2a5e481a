"""Every sandboxed exchange, by ccxt id."""

from __future__ import annotations

from keybroker_dev.sandbox.base import ExchangeSim
from keybroker_dev.sandbox.binance import Binance
from keybroker_dev.sandbox.bingx import Bingx
from keybroker_dev.sandbox.bitget import Bitget
from keybroker_dev.sandbox.bybit import Bybit
from keybroker_dev.sandbox.coinbase import Coinbase
from keybroker_dev.sandbox.deribit import Deribit
from keybroker_dev.sandbox.gate import Gate
from keybroker_dev.sandbox.htx import Htx
from keybroker_dev.sandbox.kraken import Kraken
from keybroker_dev.sandbox.kucoin import Kucoin
from keybroker_dev.sandbox.mexc import Mexc
from keybroker_dev.sandbox.okx import Okx

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
