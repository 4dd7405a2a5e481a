"""ccxt.async_support clients aimed at the configured base URLs, sharing one HTTP session.

`KEYBROKER_EXCHANGE_URLS` (docs/contracts.md §7): the base URL's scheme, host and port replace
those of every REST endpoint of that exchange, and the base URL's path is put in front of
each endpoint's path. Exchanges whose URLs are templated on `{hostname}` (okx, bybit,
bitget, htx, bingx) also get `hostname` set to the base's host:port, because HTX signs
the host it believes it talks to (docs/facts/exchanges.md, HTX signing).

Building a ccxt exchange costs 3-20 ms (its describe() tree is deep-merged), too slow
for hundreds of concurrent checks, so one template per exchange is built once and each
check works on a shallow copy carrying that check's credentials. Nothing a check writes
(credentials, last response, options) is shared: the copy gets its own `options` dict.

Exchange classes come from broker/exchanges/ccxt_loader.py, which loads only the modules
of exchanges that are actually checked (the configured, enabled ones) instead of all of
ccxt's ~110 (measured: ~0.5 s and ~40 MB less; figures in ccxt_loader's docstring).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from broker.exchanges import ccxt_loader
from broker.exchanges.base import Credentials

if TYPE_CHECKING:
    from ccxt.async_support.base.exchange import Exchange

# Before anything in the process imports ccxt the eager way.
ccxt_loader.install()

# ccxt logs every request's headers (api keys, OKX/Bitget plain passphrases) and URLs
# (HTX puts the api key in the query) at DEBUG on `self.logger`. Each client gets this
# logger instead: created outside the logging manager, so no application-wide logging
# configuration (basicConfig, dictConfig, a DEBUG root) can ever switch it on.
_SILENT = logging.Logger("keybroker.exchanges.ccxt")
_SILENT.setLevel(logging.CRITICAL + 1)
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def redirect_urls(api_urls: Any, base_url: str, hostname: str | None) -> Any:
    """`urls['api']` with every http(s) endpoint moved under `base_url` (ws left alone)."""
    base = urlsplit(base_url)
    prefix = base.path.rstrip("/")

    def move(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: move(item) for key, item in value.items()}
        if not isinstance(value, str):
            return value
        url = value.replace("{hostname}", hostname) if hostname else value
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return value
        query = f"?{parts.query}" if parts.query else ""
        return f"{base.scheme}://{base.netloc}{prefix}{parts.path}{query}"

    return move(api_urls)


def prepare_for_check(exchange: Any, base_url: str | None) -> Any:
    """What every key check's ccxt object needs, the broker's and the consumers' alike:
    the silent logger, no time sync or retries, and the configured base URL."""
    exchange.logger = _SILENT
    # No time sync: a check is exactly its self-inspection request(s).
    exchange.options["adjustForTimeDifference"] = False
    exchange.options["maxRetriesOnFailure"] = 0  # never re-send a signed request
    if base_url:
        hostname = getattr(exchange, "hostname", None)
        exchange.urls = dict(exchange.urls)
        exchange.urls["api"] = redirect_urls(exchange.urls["api"], base_url, hostname)
        if hostname:
            exchange.hostname = urlsplit(base_url).netloc
    return exchange


class ClientFactory:
    """Templates per exchange + one aiohttp session; `client()` hands out per-check copies."""

    def __init__(
        self,
        exchange_urls: Mapping[str, str],
        timeout_seconds: float,
        connection_limit: int = 1024,
    ) -> None:
        self._urls = dict(exchange_urls)
        self._timeout_ms = max(1, int(timeout_seconds * 1000))
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None
        self._templates: dict[str, Exchange] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One pool for all checks; ccxt's default per-exchange session would cap a
            # wave of checks at aiohttp's default of 100 connections and leak sockets.
            # ssl=True: aiohttp's default verifying context, built on first TLS use.
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, ttl_dns_cache=300, ssl=True
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    def template(self, exchange_id: str) -> Exchange:
        template = self._templates.get(exchange_id)
        if template is None:
            template = self._build(exchange_id)
            self._templates[exchange_id] = template
        return template

    def _build(self, exchange_id: str) -> Exchange:
        cls = ccxt_loader.exchange_class(exchange_id)
        exchange: Exchange = cls(
            {
                "enableRateLimit": False,  # one request per check; ccxt's throttle only delays
                "timeout": self._timeout_ms,
                "verbose": False,
                "session": self._get_session(),
            }
        )
        # ccxt builds a CA-loaded SSL context per instance on first use (~0.2 s) unless
        # one is set; it is only used for ccxt-owned sessions, which we never create.
        exchange.ssl_context = True
        return prepare_for_check(exchange, self._urls.get(exchange_id))

    def client(self, exchange_id: str, credentials: Credentials) -> Exchange:
        """A per-check copy of the template holding these credentials."""
        template = self.template(exchange_id)
        exchange = copy.copy(template)
        exchange.options = dict(template.options)
        exchange.session = self._get_session()
        exchange.apiKey = credentials.api_key
        exchange.secret = credentials.secret
        exchange.password = credentials.passphrase or ""
        return exchange

    @staticmethod
    def release(exchange: Exchange) -> None:
        """Detach a per-check copy from the shared session (the factory closes that)."""
        exchange.session = None
        exchange.apiKey = exchange.secret = exchange.password = ""

    async def aclose(self) -> None:
        for template in self._templates.values():
            self.release(template)
        self._templates.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
