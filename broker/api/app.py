"""`create_app(settings)`: the broker's FastAPI application, wired to its services."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from anyio import to_thread
from fastapi import FastAPI

from broker.api import openapi
from broker.api.access_log import AccessLog
from broker.api.errors import CatchAll, install_error_handlers
from broker.api.health_routes import health_router
from broker.api.hot import HotRoutes
from broker.api.limits import RequestGuard
from broker.api.routes import open_router, router
from broker.api.state import BrokerState
from broker.audit import AuditLog
from broker.callers import CallerDirectory
from broker.config import Settings
from broker.custody.transit import TransitCustody
from broker.exchanges.base import Credentials
from broker.health.service import HealthService
from broker.intake import Checker, Intake
from broker.keystore import KeyStore
from broker.metrics import BrokerMetrics
from broker.ratelimit import CallerLimits
from broker.reasons import CheckResult
from broker.site_tokens import SiteTokenMinter
from broker.vault_session import VaultSession

PRELOAD_DELAY = 0.5


class _LazyChecker:
    """broker.exchanges.KeyChecker, created on first use: importing ccxt (even trimmed by
    broker/exchanges/ccxt_loader.py, ~0.6 s) should not delay the broker's start (the
    lifespan preloads it in the background, so the first key check normally does not
    wait for it either)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._checker: Any = None
        self._lock = asyncio.Lock()

    async def _get(self) -> Any:
        async with self._lock:
            if self._checker is None:
                module = await to_thread.run_sync(importlib.import_module, "broker.exchanges")
                self._checker = module.KeyChecker(self._settings)
            return self._checker

    async def preload(self, delay: float = PRELOAD_DELAY) -> None:
        # Let the server bind and answer its first probes before the import competes
        # for the GIL (measured: /healthz after 1.5 s with the delay, 3.5 s without).
        await asyncio.sleep(delay)
        await self._get()

    async def check(self, exchange: str, role: str, credentials: Credentials) -> CheckResult:
        return await (await self._get()).check(exchange, role, credentials)

    async def aclose(self) -> None:
        if self._checker is not None:
            await self._checker.aclose()


def create_app(
    settings: Settings,
    *,
    checker: Checker | None = None,
    audit_stream: TextIO | None = None,
    vault_concurrency: int = 128,
    access_log: Callable[[str], None] | None = None,
) -> FastAPI:
    """The broker app. `checker` defaults to broker.exchanges.KeyChecker(settings);
    `audit_stream` overrides settings.audit_log (tests capture it); `access_log` gets one
    line per request (broker/api/access_log.py; dev mode prints them)."""
    metrics = BrokerMetrics()
    session = VaultSession(
        settings,
        max_concurrency=vault_concurrency,
        timeout=settings.vault_timeout,
        observe=metrics.observe_vault,
    )
    audit = AuditLog(settings, stream=audit_stream)
    the_checker = checker if checker is not None else _LazyChecker(settings)
    store = KeyStore(session, settings.kv_mount, intent_grace=settings.intent_grace)
    intake = Intake(
        settings,
        the_checker,
        store,
        audit,
        metrics,
        custody=TransitCustody(session, settings.transit_mount),
    )
    state = BrokerState(
        settings=settings,
        session=session,
        callers=CallerDirectory(session, ttl=settings.caller_cache_ttl),
        intake=intake,
        minter=SiteTokenMinter(settings, session),
        audit=audit,
        metrics=metrics,
        health=HealthService(settings, session, store, intake, audit, metrics),
        caller_limits=CallerLimits(settings.caller_rate, settings.caller_burst),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        preload = getattr(the_checker, "preload", None)
        preloading = asyncio.create_task(preload()) if preload is not None else None
        await state.intake.start()  # the reconciler: start-up recovery, then in the background
        state.health.start()  # index rebuilt from Vault metadata, then stale-key sweeps
        state.health.webhooks.start()  # resend webhooks earlier processes left in Vault
        try:
            yield
        finally:
            await state.health.aclose()
            if preloading is not None and not preloading.done():
                preloading.cancel()
            await state.intake.aclose()
            close = getattr(the_checker, "aclose", None)
            if close is not None:
                await close()
            await session.aclose()
            audit.close()

    app = FastAPI(
        title="keybroker",
        version="1",
        summary="Checks crypto-exchange API keys and keeps them in HashiCorp Vault.",
        # FastAPI's own pages load assets from CDNs: broker/api/docs.py serves them instead.
        docs_url=None,
        redoc_url=None,
        # No 307 to the slash-less path: it would answer before authentication.
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.broker = state
    install_error_handlers(app)
    openapi.install(app, settings)
    app.include_router(router)
    app.include_router(health_router)
    app.include_router(open_router)
    if settings.api_docs:
        from broker.api.docs import install_api_docs

        install_api_docs(app)
    app.add_middleware(HotRoutes)  # innermost: the two busy endpoints without the router
    app.add_middleware(CatchAll)
    # Outermost but one (the access log wraps it): runs before everything else.
    app.add_middleware(
        RequestGuard,
        body_timeout=settings.body_timeout,
        max_reading=settings.max_unauthenticated,
    )
    if access_log is not None:
        app.add_middleware(AccessLog, emit=access_log)  # times the guards' answers too
    return app
