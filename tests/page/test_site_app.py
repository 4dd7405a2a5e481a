"""The key page over HTTP, with an in-memory broker (tests/page/fakes.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from broker.config import Settings
from broker.site import app as site_app
from broker.site.app import create_site_app
from broker.site.broker_api import BrokerAnswer
from broker.site.config import SiteSettings
from broker.site.security import CONTENT_SECURITY_POLICY
from tests.page.fakes import FakeBroker, health, view

SECRET = "CANARY-SECRET-5f1c"
API_KEY = "CANARY-APIKEY-77aa"
PASSPHRASE = "CANARY-PASS-0b0b"
CANARIES = (SECRET, API_KEY, PASSPHRASE, "CANARY-INTAKE-TOKEN")


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
async def client(broker: FakeBroker) -> AsyncIterator[httpx.AsyncClient]:
    rules = Settings(exchanges=["binance", "okx"], robot_egress_ips=["203.0.113.10"])
    site = SiteSettings(allowed_hosts=["testserver"])
    app = create_site_app(site, rules, broker)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", follow_redirects=True
    ) as test_client:
        yield test_client


async def csrf(client: httpx.AsyncClient, path: str = "/accounts/alice") -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', (await client.get(path)).text)
    assert match
    return match.group(1)


async def submit(client: httpx.AsyncClient, exchange: str, role: str, **fields: str):
    form = {"csrf_token": await csrf(client), "name": "main", "api_key": API_KEY, "secret": SECRET}
    form.update(fields)
    return await client.post(f"/accounts/alice/keys/{exchange}/{role}", data=form)


def assert_no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            self.inputs.append(dict(attrs))
        if tag == "script":
            self.scripts.append(dict(attrs))


def parse(html: str) -> _Inputs:
    parser = _Inputs()
    parser.feed(html)
    return parser


async def test_one_card_per_exchange_with_passphrase_only_where_the_exchange_has_one(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/accounts/alice")
    assert page.status_code == 200
    assert 'id="card-binance"' in page.text and 'id="card-okx"' in page.text
    ids = {i["id"] for i in parse(page.text).inputs if i.get("id")}
    assert {"binance-site-secret", "binance-robot-secret", "okx-robot-passphrase"} <= ids
    assert "binance-site-passphrase" not in ids  # binance keys have none (broker/exchanges)
    assert "203.0.113.10" in page.text  # the robot's whitelist addresses, from the settings
    assert "Read-only" in page.text


async def test_an_accepted_key_shows_the_result_and_never_the_secret(
    client: httpx.AsyncClient, broker: FakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await submit(client, "okx", "robot", passphrase=PASSPHRASE)
    assert answer.status_code == 200
    assert "Key accepted and stored." in answer.text
    (sent,) = broker.submissions
    assert (sent.api_key, sent.secret, sent.passphrase) == (API_KEY, SECRET, PASSPHRASE)
    assert_no_canary(answer.text)
    assert_no_canary(repr(sent))
    assert_no_canary(caplog.text)
    # Every input comes back empty: nothing typed is echoed into the page.
    assert all(not i.get("value") for i in parse(answer.text).inputs if i.get("type") != "hidden")
    assert "AKIA...WXYZ" in answer.text  # the masked API key only


async def test_a_refusal_lists_each_reason_with_what_to_do(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    broker.next_put = BrokerAnswer(
        422,
        {
            "error": "key_rejected",
            "message": "the key was rejected",
            "reasons": [
                {"code": "withdraw_enabled", "severity": "error", "message": "withdrawals on"},
                {"code": "ip_unrestricted", "severity": "error", "message": "no whitelist"},
            ],
        },
    )
    answer = await submit(client, "binance", "robot")
    assert answer.status_code == 200
    assert "Key refused; nothing was stored." in answer.text
    assert 'role="alert"' in answer.text
    assert "withdrawals on" in answer.text and "Create a new key at the exchange" in answer.text
    assert "no whitelist" in answer.text and "Restrict the key to IP addresses" in answer.text
    assert_no_canary(answer.text)


async def test_missing_fields_are_tied_to_their_inputs_and_nothing_is_sent(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    answer = await submit(client, "okx", "site", name="", secret="")  # and no passphrase
    assert answer.status_code == 200 and "The key was not sent: see the fields." in answer.text
    assert broker.submissions == []
    inputs = {i["id"]: i for i in parse(answer.text).inputs if i.get("id")}
    for field in ("name", "secret", "passphrase"):
        attrs = inputs[f"okx-site-{field}"]
        assert attrs.get("aria-invalid") == "true"
        assert f"okx-site-{field}-error" in (attrs.get("aria-describedby") or "")
        assert f'id="okx-site-{field}-error"' in answer.text
    assert inputs["okx-site-api_key"].get("aria-invalid") is None
    assert_no_canary(answer.text)


async def test_a_post_without_the_csrf_token_is_refused(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    await client.get("/accounts/alice")  # the cookie is set, but the form token is missing/forged
    for token in ("", "0" * 64):
        answer = await client.post(
            "/accounts/alice/keys/binance/site",
            data={"csrf_token": token, "name": "x", "api_key": API_KEY, "secret": SECRET},
        )
        assert answer.status_code == 403
        assert_no_canary(answer.text)
    broker.keys[("alice", "binance", "site")] = view("alice", "binance", "site")
    assert (
        await client.post("/accounts/alice/keys/binance/site/delete", data={})
    ).status_code == 403
    assert broker.submissions == [] and ("alice", "binance", "site") in broker.keys


async def test_a_post_from_another_origin_or_host_is_refused(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    form = {"csrf_token": await csrf(client), "name": "x", "api_key": API_KEY, "secret": SECRET}
    url = "/accounts/alice/keys/binance/site"
    assert (
        await client.post(url, data=form, headers={"Origin": "http://evil.test"})
    ).status_code == 403
    # A DNS-rebinding page reaches the site under its own host name: refused before routing.
    assert (await client.get("/accounts/alice", headers={"Host": "evil.test"})).status_code == 400
    assert (await client.post(url, data=form, headers={"Host": "evil.test"})).status_code == 400
    assert broker.submissions == []
    assert (
        await client.post(url, data=form, headers={"Origin": "http://testserver"})
    ).status_code == 200


async def test_a_token_from_another_browser_is_refused(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    token = await csrf(client)
    client.cookies.clear()
    await client.get("/accounts/alice")  # a new cookie: the old token does not belong to it
    answer = await client.post(
        "/accounts/alice/keys/binance/site",
        data={"csrf_token": token, "name": "x", "api_key": API_KEY, "secret": SECRET},
    )
    assert answer.status_code == 403 and broker.submissions == []


async def test_delete_confirms_first_then_deletes(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    broker.keys[("alice", "binance", "robot")] = view("alice", "binance", "robot")
    confirm = await client.get("/accounts/alice/keys/binance/robot/delete")
    assert confirm.status_code == 200
    assert "This cannot be undone." in confirm.text
    assert "The robot will wait for a new key" in confirm.text
    assert ("alice", "binance", "robot") in broker.keys  # asking is not deleting
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', confirm.text)
    assert token
    done = await client.post(
        "/accounts/alice/keys/binance/robot/delete", data={"csrf_token": token.group(1)}
    )
    assert done.status_code == 200 and "Key deleted." in done.text
    assert ("alice", "binance", "robot") not in broker.keys
    assert (await client.get("/accounts/alice/keys/binance/robot/delete")).status_code == 404


async def test_key_health_is_shown_with_its_detail_and_polled(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    broker.keys[("alice", "okx", "robot")] = view(
        "alice",
        "okx",
        "robot",
        health=health(
            "rights_changed",
            rights=["withdraw"],
            detail="withdraw",
            stop=True,
            verified_at="2026-12-04T22:00:00+01:00",  # shown in UTC
        ),
    )
    broker.keys[("alice", "binance", "robot")] = view(
        "alice", "binance", "robot", health=health("expires_soon", expires_in_days=6, detail="6d")
    )
    broker.keys[("alice", "binance", "site")] = view(
        "alice", "binance", "site", health=health("ip_not_allowed")
    )
    page = (await client.get("/accounts/alice")).text
    assert 'data-status="rights_changed">Rights changed: withdrawals enabled<' in page
    assert "The robot has stopped using this key: enter a new key" in page
    assert "Checked by the robot at 2026-12-04 21:00:00 UTC." in page
    assert 'data-status="expires_soon">Expires in 6 days<' in page
    assert "Not yet checked by the robot: it checks a key when it first loads it." in page
    # The address in question is the consumer's own: the site's for a site key.
    assert "The exchange refused the site&#39;s address" in page
    assert "Not yet checked by the site" in page

    polled = {k["id"]: k for k in (await client.get("/accounts/alice/keys.json")).json()["keys"]}
    assert polled["okx-robot"]["label"] == "Rights changed: withdrawals enabled"
    assert (
        polled["okx-robot"]["tone"] == "bad" and polled["okx-robot"]["status"] == "rights_changed"
    )
    before = polled["binance-robot"]["state"]
    assert f'data-state="{before}"' in page.replace("&#39;", "'")
    # The robot's first verification: same status, but the page must show that it came.
    broker.keys[("alice", "binance", "robot")]["health"]["verified_at"] = (
        "2026-12-04T21:05:00+00:00"
    )
    again = {k["id"]: k for k in (await client.get("/accounts/alice/keys.json")).json()["keys"]}
    assert again["binance-robot"]["state"] != before
    assert again["binance-robot"]["checked"] == "Checked by the robot at 2026-12-04 21:05:00 UTC."
    assert set(again["binance-robot"]) == {
        "id",
        "status",
        "label",
        "tone",
        "meaning",
        "checked",
        "requested",
        "state",
    }


async def test_check_now_asks_the_broker_and_the_page_says_it_waits(
    client: httpx.AsyncClient, broker: FakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A POST form per stored key (CSRF-protected, no JavaScript needed): the broker is
    asked, the slot says so, and the status box says whom it waits for until the
    verification arrives (keys.json carries the same line for the poll)."""
    broker.keys[("alice", "okx", "robot")] = view("alice", "okx", "robot")
    page = (await client.get("/accounts/alice")).text
    assert 'action="/accounts/alice/keys/okx/robot/check"' in page
    assert "Check the robot key for okx now</button>" in page
    assert 'action="/accounts/alice/keys/binance/robot/check"' not in page  # no key: no button
    refused = await client.post("/accounts/alice/keys/okx/robot/check", data={})
    assert refused.status_code == 403 and broker.verification_requests == []

    token = await csrf(client)
    done = await client.post("/accounts/alice/keys/okx/robot/check", data={"csrf_token": token})
    assert done.status_code == 200 and broker.verification_requests == [("alice", "okx", "robot")]
    assert "Check requested: the robot checks the key with the exchange shortly." in done.text
    waiting = "Check requested at 2026-12-04 23:50:00 UTC; waiting for the robot."
    assert waiting in done.text
    polled = {k["id"]: k for k in (await client.get("/accounts/alice/keys.json")).json()["keys"]}
    assert polled["okx-robot"]["requested"] == waiting
    # The verification arrived: the broker drops the request, the line goes.
    broker.keys[("alice", "okx", "robot")]["health"].update(
        requested_at=None, verified_at="2026-12-04T23:50:02+00:00"
    )
    polled = {k["id"]: k for k in (await client.get("/accounts/alice/keys.json")).json()["keys"]}
    assert polled["okx-robot"]["requested"] == ""
    assert "waiting for" not in (await client.get("/accounts/alice")).text

    # No key (deleted meanwhile), an unknown slot, the broker down.
    gone = await client.post("/accounts/alice/keys/binance/site/check", data={"csrf_token": token})
    assert "There is no key to check" in gone.text
    bad = await client.post("/accounts/alice/keys/nowhere/site/check", data={"csrf_token": token})
    assert bad.status_code == 404
    broker.down = True
    down = await client.post("/accounts/alice/keys/okx/robot/check", data={"csrf_token": token})
    assert "not answering" in down.text
    assert_no_canary(caplog.text + done.text + gone.text)


async def test_a_view_without_health_shows_its_own_status(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    broker.keys[("alice", "okx", "site")] = view("alice", "okx", "site", health=None)
    page = (await client.get("/accounts/alice")).text
    assert 'data-status="active">Accepted<' in page


async def test_the_operator_view_lists_every_accounts_keys_by_status_from_the_broker(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    # None of these accounts ever opened the page: the broker's listing names them all.
    broker.keys[("bob", "binance", "site")] = view("bob", "binance", "site")
    broker.keys[("carol", "okx", "robot")] = view(
        "carol", "okx", "robot", health=health("rights_changed", rights=["withdraw"], stop=True)
    )
    broker.keys[("alice", "okx", "robot")] = view(
        "alice", "okx", "robot", health=health("expires_soon", expires_in_days=1)
    )
    page = (await client.get("/operator")).text
    assert broker.health_queries == [(None, site_app.OPERATOR_LIMIT)]
    connected = page.index('id="status-connected"')
    expiring = page.index('id="status-expires_soon"')
    rights = page.index('id="status-rights_changed"')
    assert connected < page.index(">bob<") < expiring < page.index(">alice<") < rights
    assert page.index(">carol<") > rights
    assert "Expires in 1 day<" in page
    assert "<td>not yet</td>" in page and "<td>2026-12-04 20:00:00 UTC</td>" in page
    assert "Rights changed: withdrawals enabled" in page
    assert "The robot has stopped using this key" in page
    # The counts, by status and exchange.
    row = re.search(r'<tr data-count-for="rights_changed">(.*?)</tr>', page, re.S)
    assert row and re.findall(r"<td>(\d+)</td>", row.group(1)) == ["0", "1", "1"]
    assert "Showing" not in page and "still loading" not in page

    only = (await client.get("/operator?status=rights_changed")).text
    assert broker.health_queries[-1] == ("rights_changed", site_app.OPERATOR_LIMIT)
    assert ">carol<" in only and ">bob<" not in only and ">alice<" not in only
    assert '<option value="rights_changed" selected>' in only


async def test_the_operator_view_says_what_it_leaves_out(
    client: httpx.AsyncClient, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for account in ("a1", "a2", "a3"):
        broker.keys[(account, "okx", "site")] = view(account, "okx", "site")
    monkeypatch.setattr(site_app, "OPERATOR_LIMIT", 2)
    broker.index_complete = False
    page = (await client.get("/operator")).text
    assert "Showing 2 of 3 keys; choose a status to narrow the list." in page
    assert "The broker is still loading the statuses" in page
    bad = await client.get("/operator?status=CANARY-nonsense")
    assert bad.status_code == 400 and "CANARY" not in bad.text
    assert 'aria-describedby="status-filter-error"' in bad.text
    assert broker.health_queries == [(None, 2)]  # the bad filter never reached the broker


async def test_the_broker_down_gives_a_plain_503(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    token = await csrf(client)
    broker.down = True
    answer = await client.post(
        "/accounts/alice/keys/binance/site",
        data={"csrf_token": token, "name": "x", "api_key": API_KEY, "secret": SECRET},
    )
    assert answer.status_code == 503 and "not answering" in answer.text
    assert_no_canary(answer.text)


@pytest.mark.parametrize(
    "path", ["/", "/accounts/alice", "/operator", "/static/page.js", "/nope", "/accounts/A..B"]
)
async def test_every_answer_carries_the_strict_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path)
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )


async def test_no_inline_script_or_style_and_no_third_party_asset(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/accounts/alice")
    for path in ("/", "/accounts/alice", "/operator"):
        html = (await client.get(path)).text
        assert "<style" not in html and " style=" not in html
        assert not re.search(r"<[^>]+\son[a-z]+=", html)  # no inline event handlers
        assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S) == [""]
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith(("/", "#")), url


async def test_bad_input_gets_a_clear_page(client: httpx.AsyncClient) -> None:
    assert (await client.get("/?account=Not%20OK")).status_code == 400
    assert (await client.get("/?account=alice", follow_redirects=False)).headers["location"] == (
        "/accounts/alice"
    )
    assert (await client.get("/accounts/alice/keys/nowhere/site/delete")).status_code == 404
    token = await csrf(client)
    big = await client.post(
        "/accounts/alice/keys/binance/site", data={"csrf_token": token, "secret": "x" * 20000}
    )
    assert big.status_code == 413


async def test_a_wrong_intake_token_is_the_operators_problem_not_the_users(
    client: httpx.AsyncClient, broker: FakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.next_put = BrokerAnswer(401, {"error": "unauthorized", "message": "bad token"})
    answer = await submit(client, "binance", "site")
    assert "The key service is not answering; nothing was changed." in answer.text
    assert "broker call failed: the broker answered 401 unauthorized" in caplog.text
    assert_no_canary(caplog.text + answer.text)


async def test_the_operator_view_when_the_broker_refuses_or_is_down(
    client: httpx.AsyncClient, broker: FakeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused(status: str | None, limit: int) -> BrokerAnswer:
        return BrokerAnswer(403, {"error": "forbidden", "message": "policy"})

    broker.key_health = refused  # type: ignore[method-assign]
    answer = await client.get("/operator")
    assert answer.status_code == 503 and "not answering" in answer.text
    assert "broker call failed: the broker answered 403 forbidden" in caplog.text
    del broker.key_health
    broker.down = True
    assert (await client.get("/operator")).status_code == 503


async def test_the_name_follows_the_brokers_rule(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    for bad, says in (("x" * 65, "must be 1 to 64 characters"), ("a\u202eb", "invisible")):
        answer = await submit(client, "binance", "site", name=bad)
        assert says in answer.text
    assert broker.submissions == []


async def test_a_post_redirects_so_the_history_keeps_no_form_body(
    client: httpx.AsyncClient, broker: FakeBroker
) -> None:
    token = await csrf(client)
    form = {"csrf_token": token, "name": "main", "api_key": API_KEY, "secret": SECRET}
    posted = await client.post(
        "/accounts/alice/keys/binance/site", data=form, follow_redirects=False
    )
    assert posted.status_code == 303 and posted.text == ""
    location = posted.headers["location"]
    assert location.startswith("/accounts/alice?result=") and location.endswith(
        "#binance-site-result"
    )
    assert_no_canary(location)
    # Another browser (another CSRF cookie) does not get the result; the poster gets it once.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        assert "Key accepted" not in (await other.get(location)).text
    assert "Key accepted and stored." in (await client.get(location)).text
    assert "Key accepted and stored." not in (await client.get(location)).text
