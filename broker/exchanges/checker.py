"""KeyChecker: one key check = precheck, self-inspection at the exchange, rules.

Never raises for key or exchange problems: every outcome is a CheckResult whose
reasons say why (retryable ones: exchange_unavailable, rate_limited). Bounded by
`check_timeout`; sends each signed request once (no retries: a signed request that
timed out may have been executed, and its nonce/timestamp is spent anyway).

Every request to an exchange takes a slot of that exchange's rate limit first
(broker/ratelimit.py). The only exception this raises: `RateLimited`, when the broker's
own limit has no slot within `exchange_queue_wait` (nothing was sent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from datetime import datetime
from typing import Any

from broker import rules
from broker.config import Settings
from broker.exchanges.base import Credentials
from broker.exchanges.client import ClientFactory
from broker.exchanges.errors import reason
from broker.exchanges.registry import get_adapter
from broker.names import ROLES
from broker.ratelimit import ExchangeLimits
from broker.reasons import CheckResult, Inspection, Reason, ReasonCode

log = logging.getLogger(__name__)


class KeyChecker:
    """`await KeyChecker(settings).check(exchange, role, credentials)`; `await aclose()`.

    `broker_egress_ip`: the one address the broker's exchange requests leave from, when
    known (defaults to a `broker_egress_ip` setting, if the configuration has one). A
    signed call that succeeds on an IP-restricted key proves that address is listed,
    which settles an undisclosed whitelist (Binance) when the role's egress set is
    exactly that address.
    """

    def __init__(self, settings: Settings, broker_egress_ip: str | None = None) -> None:
        self._settings = settings
        self._broker_egress = broker_egress_ip or settings.broker_egress_ip
        self._enabled = frozenset(settings.exchanges)
        self._clients = ClientFactory(settings.exchange_urls, settings.check_timeout)
        self._limits = ExchangeLimits(settings.exchange_rate_limits, settings.exchange_queue_wait)

    @property
    def enabled_exchanges(self) -> frozenset[str]:
        return frozenset(e for e in self._enabled if get_adapter(e) is not None)

    def requires_passphrase(self, exchange: str) -> bool:
        adapter = get_adapter(exchange)
        return adapter is not None and adapter.requires_passphrase

    async def inspect(self, exchange: str, credentials: Credentials) -> Inspection | Reason:
        """The normalized inspection, or the one reason it could not be had."""
        adapter = get_adapter(exchange)
        if adapter is None or exchange not in self._enabled:
            return Reason.error(
                ReasonCode.UNSUPPORTED_EXCHANGE, f"{exchange!r} is not an enabled exchange"
            )
        refused = adapter.precheck(credentials)
        if refused is not None:
            return refused
        due = self._admit(exchange)
        client = self._clients.client(exchange, credentials)
        self._pace(exchange, client, due)
        try:
            return await self.inspect_with(client, exchange, credentials)
        finally:
            self._clients.release(client)

    async def inspect_with(
        self, client: Any, exchange: str, credentials: Credentials
    ) -> Inspection | Reason:
        """The inspection through a ccxt client the caller built and signs with (a
        consumer's Transit-signing exchange, broker/verifier.py); no precheck."""
        adapter = get_adapter(exchange)
        if adapter is None or exchange not in self._enabled:
            return Reason.error(
                ReasonCode.UNSUPPORTED_EXCHANGE, f"{exchange!r} is not an enabled exchange"
            )
        try:
            async with asyncio.timeout(self._settings.check_timeout):
                return await adapter.inspect(client, credentials)
        except TimeoutError:
            return reason(
                ReasonCode.EXCHANGE_UNAVAILABLE,
                exchange,
                f"no answer within {self._settings.check_timeout:g} s; try again later",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every other failure becomes a reason, never a crash
            mapped = adapter.map_error(exc)
            # Class name and our code only: ccxt's message may carry the URL (HTX puts
            # the api key in the query string) and response bodies.
            log.info(
                "exchange check failed",
                extra={"exchange": exchange, "error": type(exc).__name__, "reason": mapped.code},
            )
            return mapped

    async def check(
        self,
        exchange: str,
        role: str,
        credentials: Credentials,
        now: datetime | None = None,
    ) -> CheckResult:
        if role not in ROLES:
            raise ValueError(f"role must be site or robot, not {role!r}")
        return self.judge(await self.inspect(exchange, credentials), exchange, role, now)

    def judge(
        self,
        outcome: Inspection | Reason,
        exchange: str,
        role: str,
        now: datetime | None = None,
    ) -> CheckResult:
        """The rules over an inspection (or the reason there is none): the one verdict
        intake and the consumers' verifications share."""
        if role not in ROLES:
            raise ValueError(f"role must be site or robot, not {role!r}")
        if isinstance(outcome, Reason):
            return CheckResult.refused(exchange, role, outcome)
        if self._egress_proven(outcome, role):
            outcome = outcome.model_copy(update={"ip_whitelist_verified": True})
        reasons = rules.evaluate(outcome, role, self._settings, now=now)
        return CheckResult(
            accepted=rules.accepted(reasons),
            exchange=exchange,
            role=role,
            permissions=outcome.permissions,
            ip_restricted=outcome.ip_restricted,
            ip_whitelist=outcome.ip_whitelist,
            expires_at=outcome.expires_at,
            reasons=reasons,
        )

    def _admit(self, exchange: str) -> float:
        """The monotonic time of this check's first request, or RateLimited at once."""
        # ccxt's rateLimit: milliseconds between requests, from the exchange's documented
        # limits (docs/exchanges.md "Rate limits"); KEYBROKER_EXCHANGE_RATE_LIMITS wins.
        template = self._clients.template(exchange)
        limiter = self._limits.limiter(exchange, 1000 / float(template.rateLimit))
        return time.monotonic() + limiter.reserve(self._settings.exchange_queue_wait)

    def _pace(self, exchange: str, client: Any, due: float) -> None:
        """The first request waits for the admitted slot; every further one takes a slot."""
        limiter = self._limits.limiter(exchange, 1000 / float(client.rateLimit))
        send = client.fetch
        sent = False

        async def fetch(*args: Any, **kwargs: Any) -> Any:
            nonlocal sent
            if sent:
                await limiter.acquire(self._settings.check_timeout)
            else:
                sent = True
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            return await send(*args, **kwargs)

        client.fetch = fetch

    def _egress_proven(self, inspection: Inspection, role: str) -> bool:
        """The successful signed call came from the only egress address the role uses."""
        if not self._broker_egress or inspection.ip_restricted is not True:
            return False
        egress = self._settings.egress_for(role)
        try:
            broker = ipaddress.ip_address(self._broker_egress)
            networks = [ipaddress.ip_network(text, strict=False) for text in egress]
        except ValueError:
            return False
        return len(networks) == 1 and networks[0] == ipaddress.ip_network(broker)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def __aenter__(self) -> KeyChecker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
