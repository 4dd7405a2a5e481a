"""Prometheus metrics of one broker app, in the app's own registry (tests stay isolated).

Labels hold identifiers that are already public in the API (exchange, role, outcome,
operation); never an account, a key or a token.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
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

    def observe_vault(self, operation: str, seconds: float) -> None:
        self.vault_seconds.labels(operation=operation).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
