"""Key health on the consumer's side: the site and the robot verify their own keys.

    from broker.client import RobotKeyClient
    from broker.verifier import KeyVerifier

    robot = RobotKeyClient(vault_addr, role_id, secret_id)
    verifier = KeyVerifier(robot, broker_url).start()   # background schedule
    key = verifier.key_for_use("alice", "okx", timeout=3600)  # waits while stopped
    verifier.verify("alice", "okx")                     # on demand (a Refresh button)

Each verification runs the intake's own inspection and rules
(broker/exchanges/checker.py `inspect_with` + `judge`, broker/rules.py) through the
consumer's own ccxt object: signed through its Transit key, or with the secret it read
under `kv` custody, from its own address. It runs when a key version is first loaded,
then every `interval` seconds (jittered by +-`jitter`), and on demand: `verify()`, or a
user's "Check now" on the key page, which the verifier learns by polling the broker
every `poll_requests` seconds. The result goes to the broker as reason codes and facts
only (broker/health/report.py), with the consumer's own Vault token as proof of who
reports. A dangerous status (broker/health/status.py `stops`, per `stop_on`, or the
broker's answer saying `stop`) makes `key_for_use` refuse that version and wait for a
newer one, as for a deleted key (docs/key-health.md).

Needs the full `keybroker` install (ccxt, pydantic); broker.client itself does not
import this module.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from broker.client import (
    ExchangeKey,
    KeyBrokerClientError,
    KeyNotFound,
    ServiceUnavailable,
    _KeyReader,
    post_to_broker,
)
from broker.config import Settings
from broker.exchanges.base import Credentials
from broker.health.report import Trigger, VerificationReport
from broker.health.status import DEFAULT_STOP_ON, Health, from_check, parse_stop_on, stops
from broker.names import VERIFY_INTERVAL_S
from broker.reasons import CheckResult, Severity

# How often a consumer asks the broker for "Check now" requests (docs/key-health.md).
POLL_REQUESTS_S = 30.0

log = logging.getLogger("keybroker.verifier")


class KeyStopped(KeyBrokerClientError):
    """The key's last verification found a dangerous status; a new key is needed."""


@dataclass(frozen=True)
class Verification:
    """One verification: the check result (reason messages stay here, with the consumer),
    the status it means, the broker's answer (None when it could not be reached)."""

    account: str
    exchange: str
    role: str
    version: int
    result: CheckResult = field(repr=False)
    health: Health
    broker: dict[str, Any] | None
    stop: bool
    trigger: Trigger = "demand"


@dataclass
class _Tracked:
    version: int
    due: float
    trigger: Trigger


class KeyVerifier:
    def __init__(
        self,
        client: _KeyReader,
        broker_url: str,
        *,
        settings: Settings | None = None,
        egress_ip: str | None = None,
        interval: float = VERIFY_INTERVAL_S,
        jitter: float = 0.1,
        stop_on: frozenset[str] | None = None,
        poll_requests: float = POLL_REQUESTS_S,
        timeout: float = 10.0,
        verify_tls: bool | str = True,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`settings`: the broker settings the rules read (egress, futures, ...) and the
        exchange base URLs; KEYBROKER_* from the environment when None. `egress_ip`: this
        consumer's own exchange egress, when it is the only one (proves an undisclosed
        whitelist, as the broker's own does at intake). `poll_requests`: seconds between
        polls for "Check now" requests on the keys it tracks (0: never)."""
        if not 0 <= jitter < 1 or interval <= 0 or poll_requests < 0:
            raise ValueError("interval must be > 0, jitter in [0, 1) and poll_requests >= 0")
        self._client = client
        self._broker_url = broker_url.rstrip("/")
        self._settings = settings if settings is not None else Settings()
        self._egress_ip = egress_ip
        self._interval = interval
        self._jitter = jitter
        self._poll_every = poll_requests
        self._next_poll = 0.0  # the first poll runs at start
        self._answered: dict[tuple[str, str], tuple[int, str]] = {}  # key -> last request
        self._stop_on = parse_stop_on(DEFAULT_STOP_ON if stop_on is None else stop_on)
        self._timeout = timeout
        self._verify_tls = verify_tls
        self._http = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._stopped: dict[tuple[str, str], int] = {}  # key -> the version not to use
        self.last: dict[tuple[str, str], Verification] = {}
        client.on_load(self._loaded)

    def __repr__(self) -> str:
        return f"KeyVerifier(role={self._client.role!r}, broker_url={self._broker_url!r})"

    # ------------------------------------------------------------------ schedule
    def start(self) -> KeyVerifier:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"keybroker-verifier-{self._client.role}", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 5)
            self._thread = None

    def _loaded(self, key: ExchangeKey) -> None:
        """A key was read: a version not verified yet is verified at once."""
        ident = (key.account, key.exchange)
        with self._lock:
            tracked = self._tracked.get(ident)
            if tracked is not None and tracked.version == key.version:
                return
            self._tracked[ident] = _Tracked(key.version, self._clock(), "load")
        self._wake.set()

    def _next_delay(self) -> float:
        return self._interval * random.uniform(1 - self._jitter, 1 + self._jitter)

    def _run(self) -> None:
        while not self._closing.is_set():
            now = self._clock()
            if self._poll_every and now >= self._next_poll:
                self._next_poll = now + self._poll_every
                self._answer_requests()
                now = self._clock()
            with self._lock:
                due = [(ident, t.trigger) for ident, t in self._tracked.items() if t.due <= now]
                upcoming = [t.due for t in self._tracked.values() if t.due > now]
            if self._poll_every:
                upcoming.append(self._next_poll)
            for (account, exchange), trigger in due:
                if self._closing.is_set():
                    return
                self._scheduled(account, exchange, trigger)
            if not due:
                wait = min(upcoming) - now if upcoming else self._interval
                self._wake.wait(timeout=max(0.01, wait))
                self._wake.clear()

    def _scheduled(self, account: str, exchange: str, trigger: Trigger) -> None:
        try:
            self.verify(account, exchange, trigger=trigger)
        except KeyNotFound:
            with self._lock:  # deleted: nothing to verify until a key is loaded again
                self._tracked.pop((account, exchange), None)
            return
        except KeyBrokerClientError as exc:
            log.warning(
                "verification of %s key %s/%s failed (%s)",
                self._client.role,
                account,
                exchange,
                type(exc).__name__,
            )
        with self._lock:
            tracked = self._tracked.get((account, exchange))
            if tracked is not None:
                tracked.due = self._clock() + self._next_delay()
                tracked.trigger = "schedule"

    # ------------------------------------------------------------------ "Check now"
    def _answer_requests(self) -> None:
        """Verify at once (trigger `demand`) every key this verifier tracks that a user
        asked to check; each request is answered once."""
        for request in self._requests():
            ident = (request["account"], request["exchange"])
            asked = (int(request["version"]), str(request["requested_at"]))
            with self._lock:
                if ident not in self._tracked or self._answered.get(ident) == asked:
                    continue
                self._answered[ident] = asked
            if self._closing.is_set():
                return
            self._scheduled(*ident, "demand")

    def _requests(self) -> list[dict[str, Any]]:
        """The pending requests on the tracked accounts: one poll with the client's poll
        token when it has one (the site backend's, for every site account), else one per
        token that reports (the robot's AppRole token spans accounts)."""
        with self._lock:
            accounts = sorted({account for account, _ in self._tracked})
        by_token: dict[str, list[str]] = {}
        found: list[dict[str, Any]] = []
        try:
            poll_token = self._client.request_poll_token()
            if poll_token is not None:
                return self._poll(poll_token, None) if accounts else []
            for account in accounts:
                by_token.setdefault(self._client.vault_token(account), []).append(account)
            for token, served in by_token.items():
                found += self._poll(token, served[0] if len(served) == 1 else None)
        except KeyBrokerClientError as exc:
            log.warning("polling for verification requests failed (%s)", type(exc).__name__)
        return found

    def _poll(self, token: str, account: str | None) -> list[dict[str, Any]]:
        answer = post_to_broker(
            self._http,
            f"{self._broker_url}/v1/verification-requests",
            method="GET",
            expected=200,
            refused="the request poll",
            failed="verification request poll refused",
            params={"role": self._client.role, **({"account": account} if account else {})},
            headers={"Authorization": f"Bearer {token}"},
            timeout=self._timeout,
            verify=self._verify_tls,
        )
        try:
            return list(answer.json()["requests"])
        except (ValueError, KeyError, TypeError):
            raise KeyBrokerClientError("the broker's request list is malformed") from None

    # ------------------------------------------------------------------ verification
    def verify(
        self,
        account: str,
        exchange: str,
        *,
        key: ExchangeKey | None = None,
        trigger: Trigger = "demand",
    ) -> Verification:
        """Check the key (the current version, or `key`) at the exchange now, report it to
        the broker, and remember whether it must be stopped. KeyNotFound when deleted."""
        key = key or self._read(account, exchange)
        result = asyncio.run(self._check(key))
        now = datetime.now(UTC)
        errors = [r.code for r in result.reasons if r.severity == Severity.ERROR]
        health = from_check(result.accepted, errors, result.expires_at, now)
        report = VerificationReport.of(result, key.version, now.replace(microsecond=0), trigger)
        answer: dict[str, Any] | None = None
        try:
            answer = self._report(key, report)
        except ServiceUnavailable as exc:
            log.warning("verification not reported: broker unavailable (%s)", type(exc).__name__)
        stop = stops(health, self._stop_on) or bool(answer and answer["health"].get("stop"))
        ident = (key.account, key.exchange)
        verification = Verification(
            key.account, key.exchange, key.role, key.version, result, health, answer, stop, trigger
        )
        with self._lock:
            self.last[ident] = verification
            if stop:
                self._stopped[ident] = key.version
            elif self._stopped.get(ident) == key.version:
                del self._stopped[ident]  # e.g. the user turned withdrawals off again
        log.info(
            "verified %s key %s/%s version %s (%s): %s%s",
            key.role,
            key.account,
            key.exchange,
            key.version,
            trigger,
            health.status.value,
            " (stopped)" if stop else "",
        )
        return verification

    def _read(self, account: str, exchange: str) -> ExchangeKey:
        return self._client.get_key(account, exchange)

    async def _check(self, key: ExchangeKey) -> CheckResult:
        from broker.exchanges.checker import KeyChecker
        from broker.exchanges.client import prepare_for_check

        checker = KeyChecker(self._settings, broker_egress_ip=self._egress_ip)
        exchange = self._client.signing_exchange(
            key.account,
            key.exchange,
            asynchronous=True,
            key=key,
            config={
                "enableRateLimit": False,
                "timeout": int(self._settings.check_timeout * 1000),
            },
        )
        prepare_for_check(exchange, self._settings.exchange_urls.get(key.exchange))
        credentials = Credentials(key.api_key, key.secret, key.passphrase)
        try:
            outcome = await checker.inspect_with(exchange, key.exchange, credentials)
            return checker.judge(outcome, key.exchange, key.role)
        finally:
            await exchange.close()
            await checker.aclose()

    def _report(self, key: ExchangeKey, report: VerificationReport) -> dict[str, Any]:
        url = (
            f"{self._broker_url}/v1/accounts/{key.account}/keys/{key.exchange}/{key.role}"
            "/verifications"
        )
        answer = post_to_broker(
            self._http,
            url,
            expected=200,
            refused="the verification",
            failed="verification report refused",
            not_found=f"{key.role} key {key.account}/{key.exchange}: not found",
            data=report.model_dump_json(),
            headers={
                "Authorization": f"Bearer {self._client.vault_token(key.account)}",
                "Content-Type": "application/json",
            },
            timeout=self._timeout,
            verify=self._verify_tls,
        )
        try:
            return dict(answer.json())
        except ValueError:
            raise KeyBrokerClientError("the broker's verification answer is malformed") from None

    # ------------------------------------------------------------------ use
    def stopped(self, key: ExchangeKey) -> bool:
        with self._lock:
            return self._stopped.get((key.account, key.exchange)) == key.version

    def key_for_use(
        self,
        account: str,
        exchange: str,
        *,
        timeout: float = 0.0,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> ExchangeKey:
        """The current key unless its version is stopped; then wait (bounded, backoff
        with jitter) for a newer version, as for a deleted key. KeyStopped after
        `timeout` seconds (at once with the default 0)."""
        deadline = self._clock() + timeout
        delay = initial_delay
        while True:
            try:
                key = self._client.get_key(account, exchange)
                if not self.stopped(key):
                    return key
            except (KeyNotFound, ServiceUnavailable) as exc:
                if timeout <= 0:
                    raise
                log.info(
                    "waiting for %s key %s/%s (%s)",
                    self._client.role,
                    account,
                    exchange,
                    type(exc).__name__,
                )
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise KeyStopped(
                    f"{self._client.role} key {account}/{exchange} is stopped by its last "
                    "verification; waiting for a new key"
                )
            time.sleep(min(delay * random.uniform(0.8, 1.2), remaining))
            delay = min(delay * 2, max_delay)

    def __enter__(self) -> KeyVerifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
