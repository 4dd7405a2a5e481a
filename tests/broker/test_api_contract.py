"""Every endpoint and status code of docs/contracts.md §3, over real loopback HTTP.

The broker runs in uvicorn on a free port in front of the session Vault (devvault, or a
real Vault when KEYBROKER_TEST_VAULT_ADDR/TOKEN are set) and the exchange sandbox; the
keys are the sandbox's default keys, checked by the real adapters through ccxt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import hvac
import pytest

from tests.broker.helpers import (
    CHECK_RESULT_FIELDS,
    KEY_VIEW_FIELDS,
    PERMISSION_FIELDS,
    assert_envelope,
    check_body,
    key_body,
)
from tests.fixtures.broker import BrokerEnv, new_account

KEY_PATH = "/v1/accounts/{account}/keys/{exchange}/{role}"


def put(env: BrokerEnv, account: str, exchange: str, role: str, body: dict, token: str = "intake"):
    with env.http(token) as http:
        return http.put(KEY_PATH.format(account=account, exchange=exchange, role=role), json=body)


def test_put_new_key_201_then_replacement_200(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "read_only")
    first = put(broker_env, account, "binance", "site", key_body(key, "Site key"))
    assert first.status_code == 201, first.text
    view = first.json()
    assert set(view) == KEY_VIEW_FIELDS
    assert set(view["permissions"]) == PERMISSION_FIELDS
    assert view["account"] == account and view["exchange"] == "binance" and view["role"] == "site"
    assert view["name"] == "Site key" and view["status"] == "active" and view["version"] == 1
    assert view["permissions"]["read"] and not view["permissions"]["spot_trade"]
    assert view["api_key_masked"] == f"{key.api_key[:4]}...{key.api_key[-4:]}"
    assert view["ip_restricted"] is True

    second = put(broker_env, account, "binance", "site", key_body(key, "Renamed"))
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 2 and second.json()["name"] == "Renamed"
    assert broker_env.read_key("site", account, "binance") == {
        "api_key": key.api_key,
        "secret": key.secret,
    }
    # The replaced version is destroyed, not just superseded.
    versions = broker_env.metadata("site", account, "binance")["versions"]
    assert versions["1"]["destroyed"] is True and versions["2"]["destroyed"] is False


def test_passphrase_is_stored_with_the_key(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("okx", "read_only")
    response = put(broker_env, account, "okx", "site", key_body(key))
    assert response.status_code == 201, response.text
    assert broker_env.read_key("site", account, "okx") == {
        "api_key": key.api_key,
        "secret": key.secret,
        "passphrase": key.passphrase,
    }


def test_rejected_key_422_with_reasons_and_nothing_stored(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "withdraw_enabled")
    body = assert_envelope(
        put(broker_env, account, "binance", "robot", key_body(key)), 422, "key_rejected"
    )
    assert "withdraw_enabled" in {r["code"] for r in body["reasons"]}
    assert broker_env.metadata("robot", account, "binance") is None
    assert broker_env.account_paths(account) == []


def test_site_key_that_can_trade_is_rejected(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "trade_whitelisted")
    body = assert_envelope(
        put(broker_env, account, "binance", "site", key_body(key)), 422, "key_rejected"
    )
    assert "trade_enabled" in {r["code"] for r in body["reasons"]}
    assert broker_env.metadata("site", account, "binance") is None


def test_list_and_get_keys(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    with broker_env.http() as http:
        assert http.get(f"/v1/accounts/{account}/keys").json() == {"keys": []}
    put(broker_env, account, "binance", "site", key_body(sandbox.key("binance", "read_only")))
    put(
        broker_env,
        account,
        "bybit",
        "robot",
        key_body(sandbox.key("bybit", "trade_whitelisted")),
    )
    with broker_env.http() as http:
        listed = http.get(f"/v1/accounts/{account}/keys")
        assert listed.status_code == 200
        keys = listed.json()["keys"]
        assert {(k["exchange"], k["role"]) for k in keys} == {
            ("binance", "site"),
            ("bybit", "robot"),
        }
        assert all(set(k) == KEY_VIEW_FIELDS for k in keys)
        one = http.get(KEY_PATH.format(account=account, exchange="bybit", role="robot"))
        assert one.status_code == 200
        view = one.json()
        assert view["permissions"]["spot_trade"] and view["ip_restricted"] is True
        assert "203.0.113.10" in view["ip_whitelist"]  # Bybit lists the IPs
        assert view["version"] == 1
        datetime.fromisoformat(view["created_at"].replace("Z", "+00:00"))
        assert_envelope(
            http.get(KEY_PATH.format(account=account, exchange="okx", role="robot")),
            404,
            "not_found",
        )
        assert_envelope(http.get("/v1/accounts/BAD/keys"), 400, "invalid_request")


def test_warnings_are_kept_with_the_key(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "read_only_no_whitelist")
    response = put(broker_env, account, "binance", "site", key_body(key))
    assert response.status_code == 201, response.text
    assert "ip_unrestricted" in {w["code"] for w in response.json()["warnings"]}
    with broker_env.http() as http:
        view = http.get(KEY_PATH.format(account=account, exchange="binance", role="site")).json()
    assert [w["code"] for w in view["warnings"]] == ["ip_unrestricted"]
    assert view["warnings"][0]["severity"] == "warning"


def test_delete_destroys_every_version_then_404(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account()
    key = sandbox.key("binance", "read_only")
    put(broker_env, account, "binance", "site", key_body(key))
    put(broker_env, account, "binance", "site", key_body(key))
    path = KEY_PATH.format(account=account, exchange="binance", role="site")
    with broker_env.http() as http:
        deleted = http.delete(path)
        assert deleted.status_code == 204 and deleted.content == b""
        assert broker_env.metadata("site", account, "binance") is None
        assert broker_env.read_key("site", account, "binance") is None
        assert_envelope(http.delete(path), 404, "not_found")
        assert_envelope(http.get(path), 404, "not_found")


def test_check_endpoint_reports_and_stores_nothing(broker_env: BrokerEnv, sandbox) -> None:
    with broker_env.http() as http:
        good = http.post("/v1/keys/check", json=check_body(sandbox.key("okx", "read_only"), "site"))
        assert good.status_code == 200, good.text
        result = good.json()
        assert set(result) == CHECK_RESULT_FIELDS and result["accepted"] is True
        assert set(result["permissions"]) == PERMISSION_FIELDS
        bad = http.post(
            "/v1/keys/check", json=check_body(sandbox.key("okx", "withdraw_enabled"), "robot")
        )
        assert bad.status_code == 200 and bad.json()["accepted"] is False
        assert "withdraw_enabled" in {r["code"] for r in bad.json()["reasons"]}
        assert_envelope(
            http.post("/v1/keys/check", json={**check_body(sandbox.key("okx", "read_only"), "x")}),
            400,
            "invalid_request",
        )
        assert_envelope(
            http.post(
                "/v1/keys/check",
                json={**check_body(sandbox.key("okx", "read_only"), "site"), "exchange": "nope"},
            ),
            400,
            "invalid_request",
        )


def test_site_tokens_plain_and_wrapped(broker_env: BrokerEnv) -> None:
    with broker_env.http("site_backend") as http:
        minted = http.post("/v1/site-tokens", json={})
        assert minted.status_code == 201, minted.text
        body = minted.json()
        assert set(body) == {"token", "ttl", "expires_at", "policies", "account"}
        assert body["ttl"] == 300 and "keybroker-site-read" in body["policies"]
        assert body["account"] is None
        lookup = broker_env.root.auth.token.lookup(body["token"])["data"]
        assert lookup["type"] == "batch" and "keybroker-site-read" in lookup["policies"]
        assert not lookup.get("meta")

        # Bound to an account: Vault keeps it in the token's metadata (a lookup shows it).
        bound = http.post("/v1/site-tokens", json={"account": "alice"})
        assert bound.status_code == 201 and bound.json()["account"] == "alice"
        lookup = broker_env.root.auth.token.lookup(bound.json()["token"])["data"]
        assert lookup["meta"] == {"account": "alice"}
        for bad in ("Alice", "../bob", "", "a" * 65):
            refused = http.post("/v1/site-tokens", json={"account": bad})
            assert_envelope(refused, 400, "invalid_request")
            assert bad not in refused.json()["message"] or not bad

        shorter = http.post("/v1/site-tokens", json={"ttl": "2m"})
        assert shorter.status_code == 201 and shorter.json()["ttl"] == 120

        wrapped = http.post("/v1/site-tokens", json={"ttl": "5m", "wrap_ttl": "60s"})
        assert wrapped.status_code == 201, wrapped.text
        assert set(wrapped.json()) == {"wrap_token", "wrap_ttl"}
        assert wrapped.json()["wrap_ttl"] == 60
        # The wrapping token as X-Vault-Token, no body (docs/facts/vault.md §4.4).
        wrapping = hvac.Client(url=broker_env.root.url, token=wrapped.json()["wrap_token"])
        unwrapped = wrapping.sys.unwrap()
        assert "keybroker-site-read" in unwrapped["auth"]["policies"]

        header = http.post("/v1/site-tokens", headers={"X-Vault-Wrap-TTL": "30s"})
        assert header.status_code == 201 and header.json()["wrap_ttl"] == 30

        too_long = http.post("/v1/site-tokens", json={"ttl": "16m"})
        assert "exceeds the maximum" in assert_envelope(too_long, 400, "invalid_request")["message"]
        assert_envelope(http.post("/v1/site-tokens", json={"ttl": "soon"}), 400, "invalid_request")


# Every /v1 endpoint with the marker policy it needs (docs/contracts.md §1);
# test_every_v1_route_is_in_the_auth_table keeps this list complete.
PROTECTED_ENDPOINTS = [
    ("PUT", "/v1/accounts/a1/keys/binance/site", "intake"),
    ("GET", "/v1/accounts/a1/keys", "intake"),
    ("GET", "/v1/accounts/a1/keys/binance/site", "intake"),
    ("DELETE", "/v1/accounts/a1/keys/binance/site", "intake"),
    ("POST", "/v1/keys/check", "intake"),
    ("POST", "/v1/site-tokens", "site_backend"),
    ("GET", "/v1/keys", "intake"),
    ("GET", "/v1/webhook-deliveries", "intake"),
    # Needs a consumer's token (site or robot read policy); neither of the tokens the
    # refusal test tries (no policy, intake) is one: tests/health covers the consumers.
    ("POST", "/v1/accounts/a1/keys/binance/site/verifications", "site_backend"),
    ("POST", "/v1/accounts/a1/keys/binance/site/verification-requests", "intake"),
    ("GET", "/v1/verification-requests?role=site", "site_backend"),
]


def _endpoints(routes: Iterable[Any]) -> Iterator[Any]:
    """The endpoint routes under `routes`, looking inside included routers (newer FastAPI
    keeps an included router as one entry of `app.routes`)."""
    for route in routes:
        inner = getattr(getattr(route, "original_router", route), "routes", None)
        if inner is not None:
            yield from _endpoints(inner)
        elif hasattr(route, "path_regex"):
            yield route


def test_every_v1_route_is_in_the_auth_table(broker_env: BrokerEnv) -> None:
    """A new /v1 route cannot slip past the 401/403 checks below untested."""
    routes = [
        (method, route)
        for route in _endpoints(broker_env.running.app.routes)
        if route.path.startswith("/v1/")
        for method in getattr(route, "methods", None) or ()
    ]
    assert len(routes) >= len(PROTECTED_ENDPOINTS), [route.path for _, route in routes]
    for method, route in routes:
        covered = [
            path
            for listed, path, _ in PROTECTED_ENDPOINTS
            if listed == method and route.path_regex.match(path.split("?")[0])
        ]
        assert covered, f"{method} {route.path} is missing from PROTECTED_ENDPOINTS"


@pytest.mark.parametrize(("method", "path", "policy_token"), PROTECTED_ENDPOINTS)
def test_authentication_401_and_authorization_403(
    broker_env: BrokerEnv, method: str, path: str, policy_token: str
) -> None:
    other = "site_backend" if policy_token == "intake" else "intake"
    for token, status, error in (
        (None, 401, "unauthorized"),
        ("hvs.not-a-real-token", 401, "unauthorized"),
        ("none", 403, "forbidden"),
        (other, 403, "forbidden"),
    ):
        with broker_env.http(token) as http:
            response = http.request(method, path, json={})
        assert_envelope(response, status, error)
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"


def test_auth_failures_are_audited_without_the_token(broker_env: BrokerEnv) -> None:
    with broker_env.http("hvs.CANARY-TOKEN-7f3a") as http:
        http.get("/v1/accounts/a1/keys")
    with broker_env.http("none") as http:
        http.get("/v1/accounts/a1/keys")
    failures = [line for line in broker_env.audit_lines() if line["event"] == "auth.failed"]
    assert {401, 403} <= {line["status"] for line in failures}
    assert "CANARY-TOKEN-7f3a" not in broker_env.audit.text()
    assert broker_env.no_policy_token not in broker_env.audit.text()


def test_open_endpoints_and_metrics(broker_env: BrokerEnv) -> None:
    with broker_env.http(None) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").json() == {"status": "ready"}
        spec = http.get("/openapi.json").json()
        assert "/v1/accounts/{account}/keys/{exchange}/{role}" in spec["paths"]
        assert http.get("/docs").status_code == 404  # only the three open endpoints
        assert_envelope(http.get("/metrics"), 401, "unauthorized")
    with broker_env.http("none") as http:  # any valid token may read metrics
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "keybroker_vault_seconds" in metrics.text


def test_unknown_paths_and_methods_use_the_envelope(broker_env: BrokerEnv) -> None:
    with broker_env.http() as http:
        assert_envelope(http.get("/v1/nope"), 404, "not_found")
        assert_envelope(http.post("/v1/accounts/a1/keys"), 405, "method_not_allowed")
        assert_envelope(http.patch("/healthz"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/v1/accounts/a1/keys/binance/site/"), ("GET", "/v1/accounts/a1/keys/")],
)
def test_trailing_slash_gets_no_redirect_before_authentication(
    broker_env: BrokerEnv, method: str, path: str
) -> None:
    """Only /healthz, /readyz and /openapi.json are open: an unauthenticated request with
    a trailing slash gets the envelope, not a 307 to the authenticated route."""
    with broker_env.http(None) as http:
        response = http.request(method, path, json={}, follow_redirects=False)
    assert response.status_code in (401, 404), response.status_code
    assert "location" not in response.headers
    assert set(response.json()) == {"error", "message", "reasons"}


def test_use_limited_caller_tokens_are_refused(broker_env: BrokerEnv) -> None:
    """The broker's lookup does not spend a caller's uses, so a token with num_uses would
    work any number of times: it is refused (401) instead."""
    token = broker_env.root.auth.token.create(policies=["keybroker-intake"], ttl="10m", num_uses=1)[
        "auth"
    ]["client_token"]
    with broker_env.http(token) as http:
        assert_envelope(http.get("/v1/accounts/a1/keys"), 401, "unauthorized")
