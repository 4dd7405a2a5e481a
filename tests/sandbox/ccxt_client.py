"""A test-local ccxt client pointed at the sandbox, rewriting URLs the way docs/contracts.md §7
says `KEYBROKER_EXCHANGE_URLS` does: the base URL's scheme, host and port replace those of
every REST endpoint, and its path goes in front of the endpoint's path. (The product's own
rewriting lives in broker/exchanges; this copy keeps the sandbox tests independent of it.)
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt

from keybroker_dev.sandbox import SandboxKey


@cache
def _ssl_context() -> ssl.SSLContext:
    # ccxt loads the CA bundle for every new instance (~25 ms); tests share one context.
    return ssl.create_default_context()


def _rewrite(node: Any, base: str, hostname: str | None) -> Any:
    if isinstance(node, dict):
        return {name: _rewrite(value, base, hostname) for name, value in node.items()}
    if isinstance(node, str) and node.startswith(("http://", "https://", "{")):
        url = node.replace("{hostname}", hostname) if hostname else node
        target, original = urlsplit(base), urlsplit(url)
        path = target.path.rstrip("/") + original.path
        return urlunsplit((target.scheme, target.netloc, path, original.query, ""))
    return node


def client(
    exchange: str,
    base_url: str,
    key: SandboxKey | None = None,
    *,
    api_key: str | None = None,
    secret: str | None = None,
    passphrase: str | None = None,
    timeout_ms: int = 5_000,
    **options: Any,
) -> ccxt.Exchange:
    # timeout_on_exit=0: ccxt otherwise sleeps 250 ms in close().
    config: dict[str, Any] = {
        "enableRateLimit": False,
        "timeout": timeout_ms,
        "timeout_on_exit": 0,
        "ssl_context": _ssl_context(),
    }
    if key is not None:
        config |= {"apiKey": key.api_key, "secret": key.secret}
        if key.passphrase is not None:
            config["password"] = key.passphrase
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    if passphrase is not None:
        config["password"] = passphrase
    config |= options
    instance = getattr(ccxt, exchange)(config)
    instance.urls["api"] = _rewrite(
        instance.urls["api"], base_url, getattr(instance, "hostname", None)
    )
    return instance
