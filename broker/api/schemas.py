"""Request and response bodies of the HTTP API (docs/contracts.md §3).

Credentials are `SecretStr`, so a request model's repr, str or validation error never
shows them. Unknown fields are refused: a mistyped `passphase` must not be dropped
silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from broker import ids
from broker.health.index import Entry
from broker.intake import CREDENTIAL_LIMITS, CREDENTIAL_PATTERNS, KeyRecord
from broker.reasons import Permissions, Reason, ReasonCode

_STRICT = ConfigDict(extra="forbid")


def _documented(field: str) -> Any:
    """The credential's limits (checked in broker/intake.py) stated in the OpenAPI schema.
    An empty passphrase means none (exchanges without one)."""
    pattern = CREDENTIAL_PATTERNS[field]
    return Field(
        json_schema_extra={
            "minLength": 0 if field == "passphrase" else 1,
            "maxLength": CREDENTIAL_LIMITS[field],
            "pattern": pattern.replace("]+$", "]*$") if field == "passphrase" else pattern,
        }
    )


# Names: the document states printable ASCII without surrounding spaces; the API also
# takes other printable characters (broker/ids.py validate_name).
_NAME = Field(
    json_schema_extra={
        "minLength": 1,
        "maxLength": ids.NAME_MAX,
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    }
)


class KeySubmission(BaseModel):
    model_config = _STRICT

    name: Annotated[str, _NAME]
    api_key: Annotated[SecretStr, _documented("api_key")]
    secret: Annotated[SecretStr, _documented("secret")]
    passphrase: Annotated[SecretStr | None, _documented("passphrase")] = None


class CheckRequest(BaseModel):
    model_config = _STRICT

    exchange: str  # the enabled exchanges and the roles: broker/api/openapi.py
    role: str
    api_key: Annotated[SecretStr, _documented("api_key")]
    secret: Annotated[SecretStr, _documented("secret")]
    passphrase: Annotated[SecretStr | None, _documented("passphrase")] = None


class SiteTokenRequest(BaseModel):
    """Durations: their syntax and range in the OpenAPI document (broker/api/openapi.py)."""

    model_config = _STRICT

    ttl: str | int | None = Field(default=None, examples=["5m"])
    wrap_ttl: str | int | None = Field(default=None, examples=["60s"])
    account: str | None = Field(
        default=None,
        pattern=f"^{ids.ACCOUNT_PATTERN.pattern}$",
        examples=["alice"],
        description="bind the token to this account (its Vault token metadata); "
        "a site token must be bound to report verifications",
    )


class ErrorBody(BaseModel):
    error: str
    message: str
    reasons: list[Reason] = Field(default_factory=list)


class HealthView(BaseModel):
    """The key's health (docs/key-health.md): one status, computed by the broker from the
    intake result and the consumers' latest verification."""

    status: str
    detail: str = Field(description="the changed right(s), or days left for expires_soon")
    rights: list[str]
    expires_in_days: int | None
    version: int
    verified_at: datetime | None
    changed_at: datetime
    stop: bool = Field(description="consumers stop using the key until a new one is accepted")
    requested_at: datetime | None = Field(
        default=None,
        description='a verification of this version was requested then ("Check now") and '
        "its consumer has not reported since",
    )


def health_view(entry: Entry, requested_at: datetime | None = None) -> HealthView:
    return HealthView(**entry.public, requested_at=requested_at)


class KeyView(BaseModel):
    account: str
    exchange: str
    role: str
    name: str
    api_key_masked: str
    status: str
    permissions: Permissions
    ip_restricted: bool | None
    ip_whitelist: list[str] | None
    expires_at: datetime | None
    warnings: list[Reason]
    version: int
    created_at: str
    updated_at: str
    health: HealthView | None = None


class KeyList(BaseModel):
    keys: list[KeyView]


class SiteTokenView(BaseModel):
    token: str
    ttl: int
    expires_at: datetime
    policies: list[str]
    account: str | None = None


class WrappedSiteTokenView(BaseModel):
    wrap_token: str
    wrap_ttl: int


# Fixed texts for warnings read back from metadata (only their codes are stored there).
_WARNING_TEXT = {
    ReasonCode.KEY_EXPIRING: "the key expires within 14 days",
    ReasonCode.IP_WHITELIST_EXTRA: "the IP whitelist holds addresses beyond the egress set",
    ReasonCode.IP_WHITELIST_UNVERIFIABLE: "the exchange reports only that the key is IP-restricted",
    ReasonCode.IP_UNRESTRICTED: "the key has no IP whitelist",
}


def key_view(
    record: KeyRecord,
    warnings: list[Reason] | None = None,
    health: Entry | None = None,
    requested_at: datetime | None = None,
) -> KeyView:
    stored, facts = record.stored, record.stored.facts
    if warnings is None:
        warnings = [
            Reason.warning(code, _WARNING_TEXT.get(code, code.value.replace("_", " ")))
            for code in (facts.warnings if facts else ())
        ]
    if stored.damage:  # the key exists, but its facts cannot be read: say so, never 500
        warnings = [
            *warnings,
            Reason.warning(
                ReasonCode.METADATA_DAMAGED,
                f"the stored facts are damaged ({stored.damage}); submit the key again",
            ),
        ]
    return KeyView(
        account=record.account,
        exchange=record.exchange,
        role=record.role,
        name=facts.name if facts else "",
        api_key_masked=facts.api_key_masked if facts else "",
        status="damaged" if stored.damage else facts.status if facts else "unknown",
        permissions=facts.permissions if facts else Permissions(),
        ip_restricted=facts.ip_restricted if facts else None,
        ip_whitelist=facts.ip_whitelist if facts else None,
        expires_at=facts.expires_at if facts else None,
        warnings=warnings,
        version=stored.version,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        health=health_view(health, requested_at) if health is not None else None,
    )
