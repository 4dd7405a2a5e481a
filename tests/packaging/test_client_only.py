"""The client-only install (docs/client.md): `broker.client` needs the standard library,
hvac, requests (and what requests itself pulls in) and nothing else of the product's
dependencies, and the client checks identifiers with the broker's own patterns."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import broker
from broker import client, ids

# Where `broker` is imported from (the checkout under test).
REPO = Path(broker.__file__).resolve().parents[1]

# What a service installs for the client: hvac and requests, with requests' own
# dependencies. Anything else third-party is refused by the import hook below.
ALLOWED = {"broker", "hvac", "requests", "urllib3", "idna", "certifi", "charset_normalizer"}

_PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    allowed = set(json.loads(sys.argv[1]))
    refused = []

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in sys.stdlib_module_names or top in allowed or top.startswith("_"):
                return None
            refused.append(name)
            raise ImportError(f"client-only install has no {name}")

    sys.meta_path.insert(0, Refuse())
    import broker.client  # noqa: F401

    heavy = ["pydantic", "fastapi", "ccxt", "aiohttp", "yaml", "pulumi", "policies"]
    print(json.dumps({"refused": refused, "loaded": [m for m in heavy if m in sys.modules]}))
    """
)


def test_broker_client_imports_with_hvac_and_requests_alone() -> None:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(ALLOWED))],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Optional imports that requests and urllib3 try and do without (brotli, socks, ...)
    # are refused too; the import still succeeds, so none of them is needed.
    assert result["loaded"] == []


# The old client had its own patterns and let an underscore into exchange ids, which
# the broker refuses (broker/ids.py): a path the broker can never have written.
@pytest.mark.parametrize(
    ("account", "exchange"),
    [
        ("alice", "binance"),
        ("alice", "binance_us"),
        ("alice", "_binance"),
        ("alice", "a" * 33),
        ("alice", "Binance"),
        ("Alice", "binance"),
        ("-alice", "binance"),
        ("a" * 65, "binance"),
        ("alice\n", "binance"),
        ("alice", "okx/../robot"),
        ("al.ice", "okx"),
    ],
)
def test_client_accepts_exactly_the_ids_the_broker_accepts(account: str, exchange: str) -> None:
    broker_ok = bool(ids.ACCOUNT_PATTERN.fullmatch(account)) and bool(
        ids.EXCHANGE_PATTERN.fullmatch(exchange)
    )
    try:
        client._check_ids(account, exchange)
        client_ok = True
    except client.InvalidIdentifier:
        client_ok = False
    assert client_ok == broker_ok


def test_client_refuses_an_exchange_id_with_an_underscore() -> None:
    with pytest.raises(client.InvalidIdentifier):
        client._check_ids("alice", "binance_us")
