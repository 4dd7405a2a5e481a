"""Running the key page: `keybroker site`, and an in-thread server for dev mode and tests."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from broker.api.server import RunningBroker, fast_io, open_listen_refused, serve_app_in_thread
from broker.config import ConfigError, Settings, load_settings
from broker.layout import INTAKE_POLICY
from broker.site.broker_api import BrokerApi
from broker.site.config import SiteSettings

log = logging.getLogger("keybroker.site")


def start_site_in_thread(
    site: SiteSettings,
    rules: Settings,
    host: str = "127.0.0.1",
    port: int = 0,
    api: BrokerApi | None = None,
) -> RunningBroker:
    """Serve the key page on `host:port` (0: a free port); returns once it accepts requests."""
    from broker.site.app import create_site_app

    app = create_site_app(site, rules, api)
    return serve_app_in_thread(app, rules, host, port, "the key page", "keybroker-site")


def serve_site() -> int:
    """`keybroker site`: exit 2 on a configuration problem, else run until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        site = SiteSettings()
        rules = load_settings()
        host, port = site.listen_host_port
    except (ConfigError, ValidationError, ValueError) as exc:
        # pydantic's errors name the field; hide_input keeps values (the token) out.
        message = exc.errors(include_input=False) if isinstance(exc, ValidationError) else exc
        print(f"keybroker site: {message}", file=sys.stderr)
        return 2
    if site.intake_token is None:
        print(
            "keybroker site: set KEYBROKER_SITE_INTAKE_TOKEN (a Vault token with policy "
            f"{INTAKE_POLICY})",
            file=sys.stderr,
        )
        return 2
    if open_listen_refused("keybroker site", host, site, "KEYBROKER_SITE_LISTEN"):
        return 2
    from broker.site.app import create_site_app

    log.info("key page on http://%s:%d (broker %s)", host, port, site.broker_url)
    uvicorn.run(
        create_site_app(site, rules),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        **fast_io(rules),
    )
    return 0
