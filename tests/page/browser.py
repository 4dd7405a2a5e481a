"""Headless Chromium for the key page's browser tests: launch, network log, canary and
accessibility checks, screenshots.

Uses the system's Chromium (`apt-get install chromium`; .ci/run installs it) through
Playwright's Python package: browser downloads are not needed and not attempted.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("KEYBROKER_TEST_ARTEFACTS", REPO / "test-artefacts")) / "page"


def chromium_or_skip() -> str:
    """The Chromium binary, or a skip that says what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    chosen = os.environ.get("KEYBROKER_CHROMIUM")
    if chosen and not Path(chosen).is_file():
        pytest.skip(f"KEYBROKER_CHROMIUM={chosen} does not exist")
    found = chosen or next(
        (c for c in CHROMIUM_CANDIDATES if Path(c).exists()), shutil.which("chromium")
    )
    if not found:
        pytest.skip("no Chromium: apt-get install chromium (.ci/run does it)")
    return str(found)


@dataclass
class Exchange:
    """One request the page made, with its answer (recorded by NetworkLog)."""

    method: str
    url: str
    request_body: str
    status: int
    response_headers: dict[str, str]
    response_body: str


@dataclass
class NetworkLog:
    """Every request of a browser context, routed through Playwright so that the answer
    bodies are recorded too. Playwright routes only the first request of a redirect
    chain, so requests that follow a redirect are read back when finished (`drain`)."""

    entries: list[Exchange] = field(default_factory=list)
    followed: list[Any] = field(default_factory=list)

    def drain(self) -> None:
        """Record the requests that followed a redirect (bodies read outside the event)."""
        while self.followed:
            request = self.followed.pop(0)
            response = request.response()
            self.entries.append(
                Exchange(
                    request.method,
                    request.url,
                    request.post_data or "",
                    response.status,
                    dict(response.headers),
                    response.body().decode("utf-8", "replace"),
                )
            )

    def attach(self, context: Any) -> None:
        context.on(
            "requestfinished",
            lambda r: self.followed.append(r) if r.redirected_from is not None else None,
        )

        def handle(route: Any) -> None:
            request = route.request
            # max_redirects=0: hand redirects to the browser as they are (fetch would
            # follow them itself, and the page would never see a 303).
            response = route.fetch(max_redirects=0)
            body = response.body()
            self.entries.append(
                Exchange(
                    request.method,
                    request.url,
                    request.post_data or "",
                    response.status,
                    dict(response.headers),
                    body.decode("utf-8", "replace"),
                )
            )
            route.fulfill(response=response, body=body)

        context.route("**/*", handle)


def assert_no_canary(page: Any, network: NetworkLog, canaries: list[str], step: str) -> None:
    """No canary in the DOM (markup and live input values), storage, cookies, any URL,
    any answer, or any request body other than a key form's own POST to the page."""
    dom = page.content()
    values = page.evaluate("Array.from(document.querySelectorAll('input')).map(i => i.value)")
    storage = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    cookies = json.dumps(page.context.cookies())
    network.drain()
    for canary in canaries:
        assert canary not in dom, f"{step}: a secret is in the DOM"
        assert canary not in json.dumps(values), f"{step}: a secret is in an input"
        assert canary not in storage, f"{step}: a secret is in browser storage"
        assert canary not in cookies, f"{step}: a secret is in a cookie"
        for entry in network.entries:
            where = f"{step}: {entry.method} {entry.url}"
            assert canary not in entry.url, f"{where}: a secret is in a URL"
            assert canary not in entry.response_body, f"{where}: a secret is in an answer"
            assert canary not in json.dumps(entry.response_headers), where
            if canary in entry.request_body:
                assert entry.method == "POST" and "/keys/" in entry.url, where


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the current page."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # evaluated by the driver: the page's CSP still holds
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def screenshot(page: Any, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=False)
