"""broker/api/hot.py: the two busy endpoints answer exactly as their FastAPI routes do.

The served broker (broker_env) goes through HotRoutes; a second app built from the same
settings with HotRoutes taken out goes through FastAPI's router. Both must give the same
status and body for the same requests (docs/contracts.md §3).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import Scope

from broker.api.app import create_app
from broker.api.hot import HotRoutes, _match
from broker.layout import INTAKE_POLICY, SITE_BACKEND_POLICY
from tests.fixtures.broker import BrokerEnv, new_account


def scope(method: str, path: str, root_path: str = "") -> Scope:
    return {"type": "http", "method": method, "path": path, "root_path": root_path}


@pytest.mark.parametrize(
    ("method", "path", "root_path", "policy"),
    [
        ("POST", "/v1/site-tokens", "", SITE_BACKEND_POLICY),
        ("PUT", "/v1/accounts/a1/keys/binance/site", "", INTAKE_POLICY),
        ("PUT", "/v1/accounts/a1/keys/binance/site/", "", None),  # router: redirect/404
        ("PUT", "/v1/accounts/a1/keys/binance", "", None),
        ("PUT", "/v1/accounts//keys/binance/site", "", None),  # empty segment: router's 400
        ("PUT", "/v1/accounts/a1/keys/binance/site/x", "", None),
        ("GET", "/v1/accounts/a1/keys/binance/site", "", None),
        ("DELETE", "/v1/accounts/a1/keys/binance/site", "", None),
        ("GET", "/v1/site-tokens", "", None),
        ("POST", "/v1/site-tokens/", "", None),
        ("POST", "/v1/site-tokens", "/prefix", None),
    ],
)
def test_only_the_exact_routes_take_the_hot_path(
    method: str, path: str, root_path: str, policy: str | None
) -> None:
    found = _match(scope(method, path, root_path))
    assert (found[0] if found else None) == policy


@pytest.fixture
async def routed(broker_env: BrokerEnv) -> AsyncIterator[httpx.AsyncClient]:
    """The same broker app without HotRoutes: every request goes through the router."""
    app = create_app(broker_env.settings, audit_stream=io.StringIO())
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client
    layer, layers = app.middleware_stack, []
    while layer is not None:
        layers.append(type(layer))
        layer = getattr(layer, "app", None)
    assert HotRoutes not in layers
    assert any(cls.__name__ == "CatchAll" for cls in layers)  # the walk saw the user layers
    await app.state.broker.session.aclose()


def _requests(account: str) -> list[tuple[str, str, str | None, Any]]:
    key_path = f"/v1/accounts/{account}/keys/binance/site"
    return [
        ("POST", "/v1/site-tokens", None, {}),
        ("POST", "/v1/site-tokens", "intake", {}),
        ("POST", "/v1/site-tokens", "bogus-token", {}),
        ("POST", "/v1/site-tokens", "site_backend", {"ttl": "99h"}),
        ("POST", "/v1/site-tokens", "site_backend", {"nope": 1}),
        ("POST", "/v1/site-tokens", "site_backend", "not json"),
        ("PUT", key_path, None, {}),
        ("PUT", key_path, "site_backend", {}),
        ("PUT", key_path, "intake", {"name": "x"}),
        ("PUT", f"/v1/accounts/{account}/keys/nosuch/site", "intake", {}),
        ("PUT", f"/v1/accounts/{account}/keys/binance/nosuchrole", "intake", {}),
    ]


async def test_answers_match_the_routed_app(
    broker_env: BrokerEnv, routed: httpx.AsyncClient
) -> None:
    with broker_env.http(None) as served:
        for method, path, who, body in _requests(new_account("hot")):
            headers = {}
            if who is not None:
                token = {"intake": broker_env.intake_token}.get(who, who)
                token = {"site_backend": broker_env.site_backend_token}.get(token, token)
                headers["Authorization"] = f"Bearer {token}"
            kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
            hot = served.request(method, path, headers=headers, **kwargs)
            via_router = await routed.request(method, path, headers=headers, **kwargs)
            assert (hot.status_code, hot.json()) == (
                via_router.status_code,
                via_router.json(),
            ), (method, path, who)
            assert hot.headers.get("www-authenticate") == via_router.headers.get("www-authenticate")


async def test_a_minted_token_has_the_same_shape(
    broker_env: BrokerEnv, routed: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {broker_env.site_backend_token}"}
    with broker_env.http("site_backend") as served:
        hot = served.post("/v1/site-tokens", json={"ttl": "60s"})
    via_router = await routed.post("/v1/site-tokens", json={"ttl": "60s"}, headers=headers)
    assert hot.status_code == via_router.status_code == 201
    assert hot.json().keys() == via_router.json().keys()
    assert hot.json()["policies"] == via_router.json()["policies"]
    assert hot.json()["token"] != via_router.json()["token"]
