"""broker/exchanges/ccxt_loader.py: the lazily loaded ccxt behaves like the eagerly imported one.

Each scenario runs in its own interpreter: the loader changes `sys.modules`, and this
test process (like the other tests) has imported ccxt the ordinary way already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Fixed clock and credentials so that two interpreters must produce the same signature.
_SIGN = """
def signed(ccxt_async):
    out = {}
    for exchange_id, path, api in (
        ("binance", "account", ["private"]),
        ("okx", "account/config", "private"),
    ):
        cls = getattr(ccxt_async, exchange_id)
        exchange = cls({"apiKey": "canary-key", "secret": "Y2FuYXJ5LXNlY3JldA==",
                        "password": "canary-pass"})
        exchange.milliseconds = lambda: 1_700_000_000_000
        exchange.nonce = lambda: 1_700_000_000_000
        out[exchange_id] = exchange.sign(path, api, "GET", {})
    return out
"""


def run(script: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SIGN) + textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain() -> dict:
    return run(
        """
        import json
        import ccxt, ccxt.async_support as ccxt_async
        print(json.dumps({"exchanges": ccxt_async.exchanges, "sync": ccxt.exchanges,
                          "all": ccxt_async.__all__, "signed": signed(ccxt_async)}))
        """
    )


@pytest.fixture(scope="module")
def lazy() -> dict:
    return run(
        """
        import json, sys
        from broker.exchanges import ccxt_loader
        ccxt_async = ccxt_loader.install()
        import ccxt
        loaded_at_install = sorted(
            n for n in sys.modules if n.startswith(("ccxt.async_support.", "ccxt."))
            and n.rsplit(".", 1)[1] in ccxt.exchanges
        )
        listed_by_dir = "woo" in dir(ccxt_async) and "binance" in dir(ccxt)
        woo = ccxt_async.woo  # never touched by the broker
        from ccxt.async_support import AuthenticationError, NetworkError
        from ccxt.base.errors import AuthenticationError as BaseAuthError
        import ccxt.async_support.htx  # a direct submodule import binds the class, not the module
        import ccxt.kraken
        from ccxt import bybit as sync_bybit
        try:
            ccxt_async.no_such_exchange
            missing = "no error"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({
            "lazy": [ccxt_loader.is_lazy(ccxt), ccxt_loader.is_lazy(ccxt_async)],
            "same_object": ccxt_loader.install() is ccxt_async,
            "loaded_at_install": loaded_at_install,
            "woo": [woo.__module__, issubclass(woo, ccxt_async.Exchange), listed_by_dir],
            "errors": [AuthenticationError is BaseAuthError is ccxt.AuthenticationError,
                       issubclass(NetworkError, ccxt.BaseError), ccxt.errors.__name__],
            "htx_is_class": isinstance(ccxt_async.htx, type),
            "kraken_is_class": isinstance(ccxt.kraken, type),
            "sync_bybit": sync_bybit.__module__,
            "missing": missing,
            "exchanges": ccxt_async.exchanges, "sync": ccxt.exchanges, "all": ccxt_async.__all__,
            "signed": signed(ccxt_async),
        }))
        """
    )


def test_nothing_but_the_packages_load_at_install(lazy: dict) -> None:
    assert lazy["lazy"] == [True, True]
    assert lazy["same_object"] is True
    assert lazy["loaded_at_install"] == []


def test_exchange_lists_and_all_are_intact(lazy: dict, plain: dict) -> None:
    assert lazy["exchanges"] == plain["exchanges"]
    assert lazy["sync"] == plain["sync"]
    assert lazy["all"] == plain["all"]
    assert len(lazy["exchanges"]) > 100


def test_any_exchange_loads_on_first_access(lazy: dict) -> None:
    assert lazy["woo"] == ["ccxt.async_support.woo", True, True]
    assert lazy["htx_is_class"] is True
    assert lazy["kraken_is_class"] is True
    assert lazy["sync_bybit"] == "ccxt.bybit"
    assert lazy["missing"] == "module 'ccxt.async_support' has no attribute 'no_such_exchange'"


def test_errors_are_the_same_classes(lazy: dict) -> None:
    assert lazy["errors"] == [True, True, "ccxt.base.errors"]


def test_signing_is_identical_to_the_eager_import(lazy: dict, plain: dict) -> None:
    assert lazy["signed"] == plain["signed"]
    assert "canary-key" in json.dumps(lazy["signed"]["binance"])  # a real signed request


def test_no_op_when_ccxt_was_imported_normally() -> None:
    result = run(
        """
        import json
        import ccxt.async_support as eager
        from broker.exchanges import ccxt_loader
        print(json.dumps([ccxt_loader.install() is eager, ccxt_loader.is_lazy(eager)]))
        """
    )
    assert result == [True, False]


def test_unexpected_source_shape_falls_back_to_the_plain_import() -> None:
    result = run(
        """
        import json, logging
        records = []
        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger().addHandler(type("H", (logging.Handler,), {
            "emit": lambda self, r: records.append(r.getMessage())})())
        from broker.exchanges import ccxt_loader
        # A source whose `exchanges` list no longer matches its import lines.
        ccxt_loader._strip_exchange_imports = lambda tree, package: frozenset({"binance"})
        ccxt_async = ccxt_loader.install()
        print(json.dumps({
            "lazy": ccxt_loader.is_lazy(ccxt_async),
            "okx": ccxt_async.okx.__module__,
            "why": [r for r in records if "ccxt_loader" in r],
        }))
        """
    )
    assert result["lazy"] is False
    assert result["okx"] == "ccxt.async_support.okx"
    assert len(result["why"]) == 2  # one line per package, saying why
    assert "1 exchange import lines but" in result["why"][0]


def test_concurrent_first_use_yields_one_class() -> None:
    result = run(
        """
        import json
        from concurrent.futures import ThreadPoolExecutor
        from broker.exchanges import ccxt_loader
        with ThreadPoolExecutor(8) as pool:
            classes = list(pool.map(lambda _: ccxt_loader.exchange_class("okx"), range(32)))
        print(json.dumps([len({id(c) for c in classes}), classes[0].__module__]))
        """
    )
    assert result == [1, "ccxt.async_support.okx"]
