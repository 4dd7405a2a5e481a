"""Dev mode's reference consumers: a site worker and a robot, both the runtime client
(broker/client.py) with its verifier (broker/verifier.py), as docs/key-health.md describes.

The site worker reads site keys with site tokens it gets from the broker; the robot logs
in with its AppRole. In production each knows the accounts it serves; here both learn
them from the broker's status listing (with dev mode's intake token) every DISCOVER_EVERY
seconds and load every key they find, so a key's first verification reaches the broker
within seconds of its acceptance. The robot "trades" by asking for a usable key each
round; a key stopped by its verification is reported once and then waited for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import requests

from broker.client import KeyBrokerClientError, RobotKeyClient, SiteKeyClient
from broker.config import Settings
from broker.verifier import KeyStopped, KeyVerifier

DISCOVER_EVERY = 5.0
# "Check now" on the key page reaches dev mode's consumers within about a second.
POLL_REQUESTS_EVERY = 1.0

log = logging.getLogger("keybroker.dev.consumers")


class ReferenceConsumers:
    def __init__(
        self,
        *,
        broker_url: str,
        vault_addr: str,
        intake_token: str,
        site_backend_token: str,
        robot_role_id: str,
        robot_secret_id: str,
        settings: Settings,
        egress_ip: str,
        say: Callable[[str], None],
        discover_every: float = DISCOVER_EVERY,
    ) -> None:
        self._broker_url = broker_url
        self._intake_token = intake_token
        self._say = say
        self._every = discover_every
        self._stop = threading.Event()
        site = SiteKeyClient(broker_url, site_backend_token, vault_addr)
        robot = RobotKeyClient(vault_addr, robot_role_id, robot_secret_id)
        self.verifiers = {
            role: KeyVerifier(
                client,
                broker_url,
                settings=settings,
                egress_ip=egress_ip,
                interval=settings.verify_interval,
                poll_requests=POLL_REQUESTS_EVERY,
            )
            for role, client in (("site", site), ("robot", robot))
        }
        self._known: set[tuple[str, str, str, int]] = set()
        self._stopped: set[tuple[str, str, str, int]] = set()
        self._thread = threading.Thread(
            target=self._run, name="keybroker-dev-consumers", daemon=True
        )

    def start(self) -> ReferenceConsumers:
        for verifier in self.verifiers.values():
            verifier.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for verifier in self.verifiers.values():
            verifier.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except (requests.RequestException, KeyBrokerClientError) as exc:
                log.info("consumers: round skipped (%s)", type(exc).__name__)
            self._stop.wait(self._every)

    def round(self) -> None:
        """Load every stored key (a new version is verified at once) and use it."""
        answer = requests.get(
            f"{self._broker_url}/v1/keys",
            params={"limit": "100000"},
            headers={"Authorization": f"Bearer {self._intake_token}"},
            timeout=10,
        )
        answer.raise_for_status()
        for item in answer.json()["keys"]:
            self._use(item)

    def _use(self, item: dict[str, Any]) -> None:
        role, account, exchange = item["role"], item["account"], item["exchange"]
        ident = (role, account, exchange, int(item["health"]["version"]))
        verifier = self.verifiers[role]
        try:
            key = verifier.key_for_use(account, exchange)
        except KeyStopped:
            if ident not in self._stopped:
                self._stopped.add(ident)
                self._say(
                    f"  {role}: stopped using {account}/{exchange} v{ident[3]}; "
                    "waiting for a new key"
                )
            return
        except KeyBrokerClientError:
            return
        if ident not in self._known:
            self._known.add(ident)
            self._say(f"  {role}: using {account}/{exchange} v{key.version}")
        self._stopped.discard(ident)
