"""Swagger UI (`/docs`) and ReDoc (`/redoc`) over the broker's own `/openapi.json`.

FastAPI's default pages load their JavaScript, CSS and fonts from public CDNs, which a
broker on a private network cannot reach and which would run third-party code next to
the API. The pages here load only assets served by the broker itself, from the
fastapi-offline package (it ships Swagger UI and ReDoc's standalone bundle; MIT).
Served in dev mode, and by `keybroker serve` only with KEYBROKER_API_DOCS=true.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from broker.config import ConfigError

STATIC_PATH = "/docs/static"


def assets_dir() -> Path:
    """Where fastapi-offline keeps Swagger UI and ReDoc; ConfigError when not installed."""
    try:
        import fastapi_offline
    except ImportError:
        raise ConfigError(
            "KEYBROKER_API_DOCS: the API documentation pages need the fastapi-offline "
            "package (pip install 'keybroker[docs]')"
        ) from None
    return Path(fastapi_offline.__file__).parent / "static"


def install_api_docs(app: FastAPI) -> None:
    assets = assets_dir()
    app.mount(STATIC_PATH, StaticFiles(directory=assets), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=f"{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PATH}/favicon.png",
            with_google_fonts=False,
        )
