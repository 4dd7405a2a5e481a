"""The body of `POST /v1/accounts/{account}/keys/{exchange}/{role}/verifications`.

What a consumer learned when it checked its key at the exchange (docs/key-health.md):
reason codes and the facts the rules read, never a message text, a secret or a token.
Unknown fields are refused, so nothing else can ride along into metadata or webhooks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.reasons import CheckResult, Permissions, ReasonCode, Severity

Trigger = Literal["load", "schedule", "demand"]


class ReportedReason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ReasonCode
    severity: Severity


class VerificationReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, description="the key version that was verified")
    checked_at: datetime
    trigger: Trigger = "schedule"
    accepted: bool
    reasons: list[ReportedReason] = Field(default_factory=list, max_length=32)
    permissions: Permissions | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(
        cls, result: CheckResult, version: int, checked_at: datetime, trigger: Trigger
    ) -> VerificationReport:
        """The report of a check result (codes only: the messages stay with the consumer)."""
        return cls(
            version=version,
            checked_at=checked_at,
            trigger=trigger,
            accepted=result.accepted,
            reasons=[ReportedReason(code=r.code, severity=r.severity) for r in result.reasons],
            permissions=result.permissions if result.rights_read else None,
            expires_at=result.expires_at,
        )

    @property
    def errors(self) -> list[ReasonCode]:
        return [r.code for r in self.reasons if r.severity == Severity.ERROR]
