"""`/docs` and `/redoc` (issue 11): off by default in `keybroker serve`, on with
KEYBROKER_API_DOCS=true (dev mode sets it); assets from fastapi-offline, never a CDN.
On the code before issue 11 /docs answered 404 whatever the settings."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.config import ConfigError, Settings


def _client(**settings: object) -> TestClient:
    app = create_app(Settings(vault_token="hvs.unused", **settings))  # type: ignore[arg-type]
    return TestClient(app)  # no `with`: no lifespan, nothing talks to Vault


def test_docs_are_off_unless_asked_for() -> None:
    client = _client()
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_docs_pages_load_only_local_assets() -> None:
    client = _client(api_docs=True)
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assert "cdn." not in html.text and "fonts.googleapis" not in html.text
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def test_without_fastapi_offline_the_error_names_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi_offline", None)  # import fails
    with pytest.raises(ConfigError, match="fastapi-offline"):
        _client(api_docs=True)
