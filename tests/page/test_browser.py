"""The key page in headless Chromium against dev mode (issue 16's acceptance story).

Each step is followed by the canary check (DOM, input values, storage, cookies, every URL,
answer and request body of the network log) and, on each new page, axe-core.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.exchanges.base import mask_api_key
from keybroker_dev.devmode import DevState
from tests.page.browser import (
    ARTEFACTS,
    CHROMIUM_FLAGS,
    NetworkLog,
    assert_no_canary,
    axe_violations,
    chromium_or_skip,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

LIVE_STATUS_DEADLINE_S = 30  # the bound for a consumer's verification to show


@pytest.fixture(scope="module")
def chromium() -> str:
    found = chromium_or_skip()
    shutil.rmtree(ARTEFACTS, ignore_errors=True)  # this run's screenshots only
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser_page(
    request: pytest.FixtureRequest, playwright: Any, chromium: str, tmp_path: Path
) -> Iterator[tuple[Any, NetworkLog, list[str]]]:
    from playwright.sync_api import expect

    javascript = getattr(request, "param", True)
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),  # a fresh --user-data-dir
        executable_path=chromium,
        args=CHROMIUM_FLAGS,
        headless=True,
        java_script_enabled=javascript,
        viewport={"width": 1200, "height": 900},
    )
    network = NetworkLog()
    network.attach(context)
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)  # an exchange check on a loaded CI machine
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page, network, csp_errors
    finally:
        context.close()


def canaries_of(dev: DevState, used: list[dict[str, str]]) -> list[str]:
    found = [dev.intake_token, dev.site_backend_token, dev.root_token, dev.robot_secret_id]
    for key in used:
        found += [v for k, v in key.items() if k in ("api_key", "secret", "passphrase")]
    return found


def enter_key(page: Any, slot: str, name: str, key: dict[str, str]) -> None:
    box = page.locator(f"#slot-{slot}")
    box.locator("summary").click()
    page.fill(f"#{slot}-name", name)
    page.fill(f"#{slot}-api_key", key["api_key"])
    page.fill(f"#{slot}-secret", key["secret"])
    if "passphrase" in key:
        page.fill(f"#{slot}-passphrase", key["passphrase"])
    box.locator(".key-form button[type=submit]").click()


def check_a11y(page: Any, step: str) -> None:
    assert axe_violations(page) == [], step


def health_of(page: Any, slot: str) -> Any:
    return page.locator(f"#{slot}-health")


def test_the_whole_story_with_javascript(chromium: str, dev: DevState, browser_page: Any) -> None:
    from playwright.sync_api import expect

    page, network, csp_errors = browser_page
    keys = dev.sandbox_keys
    used = [
        keys["binance"]["read_only"],
        keys["binance"]["trade_whitelisted"],
        # Dev mode binds site keys to loopback (127.0.0.1/32): a key that lists another
        # whitelist is refused for the site, so kucoin's good site key is one without any
        # whitelist (accepted with a warning). (OKX's trade right bundles futures.)
        keys["kucoin"]["read_only_no_whitelist"],
        keys["kucoin"]["trade_whitelisted"],
        keys["gate"]["withdraw_enabled"],
        keys["binance"]["read_only_no_whitelist"],
        keys["bybit"]["expiring_soon"],
    ]
    canaries = canaries_of(dev, used)
    started = time.monotonic()

    page.goto(f"{dev.ui_url}/accounts/alice")
    expect(page.locator("h1")).to_contain_text("Exchange keys of alice")
    check_a11y(page, "account page")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    check_a11y(page, "account page, every form open")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = false; })")
    screenshot(page, "01-account")

    # A good site key and a good robot key on two exchanges: all accepted, none checked
    # by its consumer yet when the result is shown.
    accepted_at: dict[str, float] = {}
    for n, (slot, key) in enumerate(
        zip(("binance-site", "binance-robot", "kucoin-site", "kucoin-robot"), used[:4], strict=True)
    ):
        enter_key(page, slot, f"alice {slot}", key)
        result = page.locator(f"#{slot}-result")
        expect(result).to_contain_text("Key accepted and stored.")
        accepted_at[slot] = time.monotonic()
        assert page.evaluate("document.activeElement.id") == f"{slot}-result"
        expect(health_of(page, slot).locator(".status")).to_have_text("Connected")
        assert "Not yet checked by the" in health_of(page, slot).inner_text()
        assert_no_canary(page, network, canaries, f"enter {slot}")
        screenshot(page, f"02-entered-{n}-{slot}")
    assert "203.0.113.10" in page.locator("#binance-robot-rules").inner_text()
    # The script's POSTs were redirected too, and the GETs they led to were checked.
    assert any(e.method == "GET" and "?result=" in e.url for e in network.entries)
    check_a11y(page, "after entering keys")

    # The consumers' own verifications (dev mode's reference robot and site worker, through
    # ccxt and the sandbox) arrive without a reload.
    before = page.evaluate("performance.timeOrigin")
    live_s: dict[str, float] = {}
    for slot, who in (
        ("binance-robot", "robot"),
        ("kucoin-robot", "robot"),
        ("kucoin-site", "site"),
    ):
        expect(health_of(page, slot).locator(".status-checked")).to_contain_text(
            f"Checked by the {who} at", timeout=LIVE_STATUS_DEADLINE_S * 1000
        )
        live_s[slot] = time.monotonic() - accepted_at[slot]
        expect(health_of(page, slot).locator(".status")).to_have_text("Connected")
    assert page.evaluate("performance.timeOrigin") == before, "the page was reloaded"
    assert_no_canary(page, network, canaries, "verifications")
    screenshot(page, "03-robot-verified")

    # Check now: the robot checks the key again at once, and the page shows it without a
    # reload: first that it waits for the robot, then the new check's time.
    checked = health_of(page, "binance-robot").locator(".status-checked")
    first = checked.inner_text()
    page.click("text=Check the robot key for binance now")
    expect(page.locator("#binance-robot-result")).to_contain_text("Check requested")
    asked = time.monotonic()
    expect(health_of(page, "binance-robot").locator(".status-requested")).to_contain_text(
        "waiting for the robot"
    )
    check_a11y(page, "check requested")
    screenshot(page, "03b-check-requested")
    expect(checked).not_to_have_text(first, timeout=LIVE_STATUS_DEADLINE_S * 1000)
    expect(health_of(page, "binance-robot").locator(".status-requested")).to_have_text("")
    live_s["check now"] = time.monotonic() - asked
    assert page.evaluate("performance.timeOrigin") == before, "the page was reloaded"
    assert_no_canary(page, network, canaries, "check now")

    # A key that can withdraw: refused, with each reason and what to do.
    enter_key(page, "gate-robot", "risky", keys["gate"]["withdraw_enabled"])
    refusal = page.locator("#gate-robot-result")
    expect(refusal).to_contain_text("Key refused; nothing was stored.")
    expect(refusal.locator('[data-code="withdraw_enabled"]')).to_contain_text(
        "What to do: Create a new key at the exchange with withdrawals switched off"
    )
    expect(page.locator("#slot-gate-robot")).to_contain_text("No key yet.")
    assert_no_canary(page, network, canaries, "refusal")
    check_a11y(page, "refusal")
    screenshot(page, "04-refused")

    # Change a key: the new one replaces it; only its masked API key is ever shown.
    new_key = keys["binance"]["read_only_no_whitelist"]
    old_masked = mask_api_key(keys["binance"]["read_only"]["api_key"])
    expect(page.locator("#slot-binance-site summary")).to_contain_text(old_masked)
    enter_key(page, "binance-site", "alice new", new_key)
    expect(page.locator("#binance-site-result")).to_contain_text("New key accepted")
    expect(page.locator("#slot-binance-site .masked")).to_have_text(
        mask_api_key(new_key["api_key"])
    )
    assert_no_canary(page, network, canaries, "change")
    screenshot(page, "05-changed")

    # A key that lapses in 7 days: accepted with a warning; the page counts the days.
    enter_key(page, "bybit-robot", "alice bybit", keys["bybit"]["expiring_soon"])
    expect(page.locator("#bybit-robot-result")).to_contain_text("Key accepted and stored.")
    expect(health_of(page, "bybit-robot").locator(".status")).to_have_text(
        re.compile(r"Expires in [67] days")
    )
    assert_no_canary(page, network, canaries, "expiring key")

    # Delete after confirming.
    page.click("text=Delete the robot key for kucoin")
    expect(page.locator("#delete-warning")).to_contain_text("This cannot be undone.")
    expect(page.locator("#delete-warning")).to_contain_text("The robot will wait for a new key")
    check_a11y(page, "delete confirmation")
    screenshot(page, "06-confirm-delete")
    page.click("text=Delete the key for good")
    expect(page.locator("#kucoin-robot-result")).to_contain_text("Key deleted.")
    expect(page.locator("#slot-kucoin-robot")).to_contain_text("No key yet.")
    assert_no_canary(page, network, canaries, "delete")
    screenshot(page, "07-deleted")

    # The operator view: keys by status across all accounts, with counts and the reasons,
    # and a status filter (a plain GET form).
    page.goto(f"{dev.ui_url}/operator")
    connected = page.locator("section", has=page.locator("#status-connected"))
    expect(connected).to_contain_text("alice")
    expect(page.locator('#counts [data-count-for="connected"]')).to_be_visible()
    expiring = page.locator("section", has=page.locator("#status-expires_soon"))
    expect(expiring).to_contain_text("bybit")
    expect(expiring).to_contain_text(re.compile(r"Expires in [67] days"))
    check_a11y(page, "operator view")
    assert_no_canary(page, network, canaries, "operator view")
    screenshot(page, "08-operator")
    page.select_option("#status-filter", "expires_soon")
    page.click("text=Show")
    expect(page).to_have_url(re.compile(r"/operator\?status=expires_soon$"))
    expect(page.locator("#status-expires_soon")).to_be_visible()
    expect(page.locator("#status-connected")).to_have_count(0)
    check_a11y(page, "operator view, filtered")
    assert_no_canary(page, network, canaries, "operator view, filtered")
    screenshot(page, "09-operator-filtered")

    assert csp_errors == []
    assert max(live_s.values()) < LIVE_STATUS_DEADLINE_S
    shown = ", ".join(f"{slot} {s:.1f}s" for slot, s in live_s.items())
    print(f"browser story {time.monotonic() - started:.1f}s; verified after acceptance: {shown}")


@pytest.mark.parametrize("browser_page", [False], indirect=True, ids=["no-javascript"])
def test_entering_and_deleting_work_without_javascript(
    chromium: str, dev: DevState, browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page, network, _ = browser_page
    key = dev.sandbox_keys["bitget"]["read_only_no_whitelist"]  # see the story above
    canaries = canaries_of(dev, [key])
    page.goto(f"{dev.ui_url}/accounts/bob")
    enter_key(page, "bitget-site", "bob main", key)  # a real form POST and a new page
    expect(page.locator("#bitget-site-result")).to_contain_text("Key accepted and stored.")
    expect(health_of(page, "bitget-site")).to_contain_text("Connected")  # rendered by the server
    # Post/Redirect/Get: the page on screen (and in the history) came from a GET.
    assert page.url.startswith(f"{dev.ui_url}/accounts/bob?result=")
    network.drain()
    assert [e.method for e in network.entries if "/accounts/bob" in e.url][-2:] == ["POST", "GET"]
    assert_no_canary(page, network, canaries, "no-JS enter")
    screenshot(page, "10-nojs-entered")

    # Check now is a plain form too (its waiting line may already be gone: the site polls
    # every second in dev mode).
    page.click("text=Check the site key for bitget now")
    expect(page.locator("#bitget-site-result")).to_contain_text("Check requested")
    network.drain()
    assert [e.method for e in network.entries if "/accounts/bob" in e.url][-2:] == ["POST", "GET"]
    assert_no_canary(page, network, canaries, "no-JS check now")

    page.click("text=Delete the site key for bitget")
    expect(page.locator("#delete-warning")).to_contain_text("This cannot be undone.")
    page.click("text=Delete the key for good")
    expect(page.locator("#bitget-site-result")).to_contain_text("Key deleted.")
    expect(page.locator("#slot-bitget-site")).to_contain_text("No key yet.")
    assert_no_canary(page, network, canaries, "no-JS delete")
    screenshot(page, "11-nojs-deleted")
