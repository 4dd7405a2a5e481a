"""The per-app services the routes use, kept on `app.state.broker`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from broker.audit import AuditLog
from broker.callers import CallerDirectory
from broker.config import Settings
from broker.health.service import HealthService
from broker.intake import Intake
from broker.metrics import BrokerMetrics
from broker.ratelimit import CallerLimits
from broker.site_tokens import SiteTokenMinter
from broker.vault_session import VaultSession


@dataclass
class BrokerState:
    settings: Settings
    session: VaultSession
    callers: CallerDirectory
    intake: Intake
    minter: SiteTokenMinter
    audit: AuditLog
    metrics: BrokerMetrics
    health: HealthService
    caller_limits: CallerLimits


def state_of(request: Request) -> BrokerState:
    return request.app.state.broker
