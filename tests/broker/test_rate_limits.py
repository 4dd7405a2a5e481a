"""Outgoing requests per exchange stay within the exchange's limit under a flood (issue 17).

Binance's limit set to 20 per second (`KEYBROKER_EXCHANGE_RATE_LIMITS`), 50 concurrent
callers flooding key checks: the sandbox never sees more than 20 requests in any one
second, and every caller gets 200 or 429 with Retry-After (nothing else). Before issue
17 nothing limited the rate: the sandbox saw every check at once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import time
from typing import Any

import httpx
import pytest

from broker.ratelimit import WindowLimiter
from tests.broker.helpers import check_body
from tests.fixtures.broker import _endpoint, build_broker_env

LIMIT = 20
CALLERS = 50
FLOOD_SECONDS = 2.5


def _max_in_any_second(arrivals: list[float]) -> int:
    arrivals = sorted(arrivals)
    return max(
        (bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)), default=0
    )


def test_a_flood_of_checks_stays_within_the_exchange_limit(
    vault_endpoint: Any, fresh_sandbox: Any
) -> None:
    addr, token = _endpoint(vault_endpoint)
    env = build_broker_env(
        addr, token, fresh_sandbox.exchange_urls, exchange_rate_limits={"binance": LIMIT}
    )
    arrivals: list[float] = []
    lock = threading.Lock()
    count = fresh_sandbox.state.count

    def counting(api_key: str | None) -> None:  # called by the sandbox on every request
        with lock:
            arrivals.append(time.monotonic())
        count(api_key)

    fresh_sandbox.state.count = counting
    body = check_body(fresh_sandbox.key("binance", "read_only"), "site")

    async def caller(client: httpx.AsyncClient, deadline: float) -> list[httpx.Response]:
        answers = []
        while time.monotonic() < deadline:
            answers.append(await client.post("/v1/keys/check", json=body))
        return answers

    async def flood() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {env.intake_token}"}
        limits = httpx.Limits(max_connections=CALLERS)
        async with httpx.AsyncClient(
            base_url=env.url, headers=headers, timeout=30, limits=limits
        ) as client:
            deadline = time.monotonic() + FLOOD_SECONDS
            done = await asyncio.gather(*(caller(client, deadline) for _ in range(CALLERS)))
        return [answer for answers in done for answer in answers]

    try:
        answers = asyncio.run(flood())
        with env.http() as http:
            metrics = http.get("/metrics").text
    finally:
        fresh_sandbox.state.count = count
        env.running.stop()
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 429}, statuses
    assert 429 in statuses and 200 in statuses
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["error"] == "rate_limited"
            assert int(answer.headers["retry-after"]) >= 1
    assert len(arrivals) == sum(a.status_code == 200 for a in answers)
    assert _max_in_any_second(arrivals) <= LIMIT
    assert 'keybroker_rate_limited_total{exchange="binance",scope="exchange"}' in metrics


def test_window_limiter_never_exceeds_its_rate() -> None:
    limiter = WindowLimiter(rate=5, limit=5)
    waits = [limiter.reserve(max_wait=10) for _ in range(12)]
    assert waits[:5] == [0.0] * 5 and all(w > 1.0 for w in waits[5:10])
    even = WindowLimiter(rate=10)
    gaps = [even.reserve(max_wait=10) for _ in range(4)]
    assert gaps[0] == 0.0 and all(0.124 < b - a < 0.126 for a, b in itertools.pairwise(gaps))
    with pytest.raises(Exception) as refused:
        limiter.reserve(max_wait=0.5)
    assert refused.value.retry_after >= 1  # type: ignore[attr-defined]
