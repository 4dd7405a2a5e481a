"""Every sandboxed exchange, by ccxt id."""

from __future__ import annotations

from broker.sandbox.base import ExchangeSim
from broker.sandbox.binance import Binance
from broker.sandbox.bybit import Bybit
from broker.sandbox.okx import Okx

SIMULATORS: dict[str, ExchangeSim] = {sim.name: sim for sim in (Binance(), Okx(), Bybit())}
