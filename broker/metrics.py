"""Prometheus metrics of one broker app, in the app's own registry (tests stay isolated).

Labels hold identifiers that are already public in the API (exchange, role, outcome,
operation); never an account, a key or a token.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BrokerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.intake = Counter(
            "keybroker_intake",
            "Key submissions by exchange, role and outcome.",
            ["exchange", "role", "outcome"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "keybroker_check_seconds",
            "Time to inspect a key at its exchange.",
            ["exchange"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.vault_seconds = Histogram(
            "keybroker_vault_seconds",
            "Time of the broker's Vault calls, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.site_tokens = Counter(
            "keybroker_site_tokens",
            "Site tokens minted, by whether they were response-wrapped.",
            ["wrapped"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "keybroker_auth_failures",
            "Rejected callers, by HTTP status (401 unknown token, 403 missing policy).",
            ["status"],
            registry=self.registry,
        )
        self.rate_limited_total = Counter(
            "keybroker_rate_limited",
            "Requests refused with 429, by scope (exchange: the exchange's outgoing limit; "
            "caller: a caller's API limit) and exchange (empty for callers).",
            ["scope", "exchange"],
            registry=self.registry,
        )
        self.intents_pending = Gauge(
            "keybroker_write_intents_pending",
            "Write intents found unfinished by the reconciler's last round.",
            registry=self.registry,
        )

        # Labelled children by label value: `.labels()` validates and locks on every
        # call, and the hot paths (one to four Vault calls per request) reuse few values.
        self._vault_children: dict[str, Any] = {}
        self._site_token_children = {
            wrapped: self.site_tokens.labels(wrapped=str(wrapped).lower())
            for wrapped in (False, True)
        }

    def observe_vault(self, operation: str, seconds: float) -> None:
        child = self._vault_children.get(operation)
        if child is None:
            child = self._vault_children[operation] = self.vault_seconds.labels(operation=operation)
        child.observe(seconds)

    def site_token_minted(self, wrapped: bool) -> None:
        self._site_token_children[wrapped].inc()

    def auth_failure(self, status: int) -> None:
        self.auth_failures.labels(status=str(status)).inc()

    def rate_limited(self, scope: str, exchange: str) -> None:
        self.rate_limited_total.labels(scope=scope, exchange=exchange).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
