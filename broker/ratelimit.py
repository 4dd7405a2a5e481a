"""Rate limits: outgoing requests per exchange, and API requests per caller.

Exchanges ban addresses that exceed their request weight (Binance answers -1003, then
bans the IP), and every signed check leaves from the platform's address, so one
caller's loop could get the whole platform banned. Each exchange gets a
`WindowLimiter` that spaces its requests evenly, `WINDOW_MARGIN / rate` seconds apart
(20% below the rate; evenly rather than in bursts, and with a margin, so that delays
on the way cannot bunch more than `rate` of them into one second on arrival).
A check waits for a slot for at most `exchange_queue_wait`; beyond that it is refused
at once with `RateLimited` (429 and Retry-After), before anything is sent.

Default rates are ccxt's own `rateLimit` of each exchange (milliseconds between
requests, which ccxt derives from the exchange's documented limits; figures and sources
in docs/exchanges.md); `KEYBROKER_EXCHANGE_RATE_LIMITS` overrides them per ccxt id.

Callers (one Vault token each) get a token bucket of `caller_rate` requests per second
with bursts of `caller_burst`; an empty bucket is 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque

WINDOW_MARGIN = 1.25
_MAX_CALLERS = 10_000  # buckets kept; the least recently seen caller's is dropped first


class RateLimited(Exception):
    """Too many requests; `retry_after` is a whole number of seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class WindowLimiter:
    """At most `limit` events in any window of `window` seconds, in arrival order
    (for exchanges: one per `WINDOW_MARGIN / rate` seconds)."""

    def __init__(self, rate: float, limit: int = 1) -> None:
        if not rate > 0 or limit < 1:
            raise ValueError("the rate and the limit must be positive")
        self.rate = rate
        self.limit = limit
        self.window = limit / rate * WINDOW_MARGIN
        self._slots: deque[float] = deque()  # reserved send times (monotonic), ascending

    def reserve(self, max_wait: float) -> float:
        """Reserve the next slot; returns the wait before it. Raises RateLimited when the
        wait would exceed `max_wait` (nothing is reserved then)."""
        now = time.monotonic()
        while self._slots and self._slots[0] <= now - self.window:
            self._slots.popleft()
        slot = now
        if len(self._slots) >= self.limit:
            slot = max(slot, self._slots[-self.limit] + self.window)
        if self._slots:
            slot = max(slot, self._slots[-1])
        wait = slot - now
        if wait > max_wait:
            raise RateLimited("too many requests to the exchange; retry later", wait)
        self._slots.append(slot)
        return wait

    async def acquire(self, max_wait: float) -> None:
        wait = self.reserve(max_wait)
        if wait > 0:
            await asyncio.sleep(wait)


class ExchangeLimits:
    """One WindowLimiter per exchange: the configured rate, else the given default."""

    def __init__(self, overrides: dict[str, float], queue_wait: float) -> None:
        self._overrides = dict(overrides)
        self._queue_wait = queue_wait
        self._limiters: dict[str, WindowLimiter] = {}

    def limiter(self, exchange: str, default_rate: float) -> WindowLimiter:
        found = self._limiters.get(exchange)
        if found is None:
            found = self._limiters[exchange] = WindowLimiter(
                self._overrides.get(exchange, default_rate)
            )
        return found


class CallerLimits:
    """Token buckets per caller id (an HMAC of the token, never the token)."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, caller: str) -> None:
        now = time.monotonic()
        tokens, stamp = self._buckets.pop(caller, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1:
            self._buckets[caller] = (tokens, now)
            raise RateLimited("too many requests from this caller", (1 - tokens) / self._rate)
        self._buckets[caller] = (tokens - 1, now)
        while len(self._buckets) > _MAX_CALLERS:
            self._buckets.popitem(last=False)
