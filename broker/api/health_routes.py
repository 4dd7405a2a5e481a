"""Key health endpoints (docs/contracts.md §3, docs/key-health.md).

- `POST /v1/accounts/{account}/keys/{exchange}/{role}/verifications`: a consumer reports
  its own verification of a key, authenticated with its own Vault token. The token's
  policies say which consumer it is (`keybroker-site-read`: the site, `keybroker-robot-read`:
  the robot); a report for the other role, from a token that is no consumer's, or from a
  token bound to another account (its `meta.account`) is 403 and audited. Roles listed in
  KEYBROKER_ACCOUNT_BOUND_REPORTS (default: site) must report with a token bound to the
  key's account; the robot's AppRole spans accounts unless its secret ID names one
  (docs/key-health.md "Who may report").
- `POST /v1/accounts/{account}/keys/{exchange}/{role}/verification-requests` (intake
  token): "Check now", a verification of the key's current version is asked for;
  `GET /v1/verification-requests?role=&account=` (the consumer's own token, the same
  role and account rules as reports, or for site keys the site backend's token, which
  serves every account): the requests pending for that consumer
  (broker/health/demand.py, docs/key-health.md "Check now").
- `GET /v1/keys?status=&exchange=&role=&account=&limit=`: operators' listing across
  accounts, served from the broker's index, with counts by status and exchange.
- `GET /v1/webhook-deliveries?limit=`: operators' view of this process's webhook
  delivery log, newest first (docs/key-health.md "Webhooks").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from broker.api.auth import AuthenticatedCaller
from broker.api.errors import ApiError
from broker.api.routes import (
    _ERRORS,
    _body_schema,
    any_caller,
    intake_caller,
    parse_body,
    parse_status,
)
from broker.api.schemas import HealthView, health_view
from broker.api.state import BrokerState, state_of
from broker.health.demand import VerificationRequest
from broker.health.report import VerificationReport
from broker.health.service import VersionMismatch
from broker.ids import validate_account, validate_role
from broker.layout import ROBOT_READ_POLICY, SITE_BACKEND_POLICY, SITE_READ_POLICY
from broker.webhooks import DELIVERY_LOG_SIZE

# The consumer a token belongs to, by the read policy the layout gives it.
CONSUMER_POLICY = {"site": SITE_READ_POLICY, "robot": ROBOT_READ_POLICY}
MAX_LIMIT = 100_000

health_router = APIRouter(prefix="/v1", responses=_ERRORS | {409: _ERRORS[400]})


class KeyHealthItem(BaseModel):
    account: str
    exchange: str
    role: str
    health: HealthView


class KeyHealthList(BaseModel):
    keys: list[KeyHealthItem]
    total: int = Field(description="matching keys (the list holds at most `limit`)")
    counts: dict[str, dict[str, int]] = Field(description="status -> exchange -> keys")
    index_complete: bool = Field(description="false while the start-up rebuild runs")
    index_synced_at: datetime | None = Field(
        description="when this process's index last finished a pass over Vault (it sees "
        "other broker processes' changes from then on)"
    )


class DeliveryView(BaseModel):
    event_id: str
    host: str = Field(description="the receiver's host (the URL may hold a token)")
    attempt: int = Field(description="1 for the first attempt; 0 for a resend given up")
    status: int | None = Field(description="the receiver's HTTP status; null: no answer")
    ok: bool
    at: datetime
    abandoned: bool


class DeliveryLog(BaseModel):
    deliveries: list[DeliveryView]
    in_flight: int = Field(description="events this process is still delivering or retrying")


class VerificationAnswer(BaseModel):
    account: str
    exchange: str
    role: str
    health: HealthView
    checked_at: datetime


class RequestView(BaseModel):
    account: str
    exchange: str
    role: str
    version: int = Field(description="the key version to verify")
    requested_at: datetime


class RequestList(BaseModel):
    requests: list[RequestView]


def _request_view(request: VerificationRequest) -> RequestView:
    return RequestView.model_validate(request.to_json())


@health_router.post(
    "/accounts/{account}/keys/{exchange}/{role}/verification-requests",
    response_model=RequestView,
    status_code=202,
)
async def request_verification(
    account: str,
    exchange: str,
    role: str,
    request: Request,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> RequestView:
    """Ask the key's consumer to verify its current version now (404 without a key)."""
    state = state_of(request)
    paths = state.intake.key_paths(account, exchange, role)
    record = await state.intake.get(paths.account, paths.exchange, paths.role)
    asked = state.health.requests.add(
        (paths.account, paths.exchange, paths.role), record.stored.version, datetime.now(UTC)
    )
    state.audit.emit(
        "verification.requested",
        caller=who.audit_id,
        account=asked.account,
        exchange=asked.exchange,
        role=asked.role,
        version=asked.version,
    )
    return _request_view(asked)


@health_router.get("/verification-requests", response_model=RequestList)
async def pending_verification_requests(
    request: Request,
    role: str,
    account: str | None = None,
    who: AuthenticatedCaller = Depends(any_caller),
) -> RequestList:
    """The requests a consumer should answer: its role's, of its own account when its
    token is bound to one (or of `account`, which a bound token must match)."""
    state = state_of(request)
    role = validate_role(role)  # InvalidIdentifier: 400
    account = validate_account(account) if account is not None else None
    # The site backend serves (and mints site tokens for) every account: it polls for all
    # of them at once; every other caller as it reports.
    if not (role == "site" and who.caller.has(SITE_BACKEND_POLICY)):
        if not who.caller.has(CONSUMER_POLICY[role]):
            _refuse_role(state, request, who, role, action="poll for requests on")
        account = account or who.caller.account
        # "" names no account: an unbound token is then refused if its role must be bound.
        _check_account(state, request, who, role, account or "")
    pending = state.health.requests.pending(role, account, datetime.now(UTC))
    return RequestList(requests=[_request_view(r) for r in pending])


@health_router.post(
    "/accounts/{account}/keys/{exchange}/{role}/verifications",
    response_model=VerificationAnswer,
    openapi_extra=_body_schema(VerificationReport),
)
async def post_verification(
    account: str,
    exchange: str,
    role: str,
    request: Request,
    who: AuthenticatedCaller = Depends(any_caller),
) -> VerificationAnswer:
    state = state_of(request)
    paths = state.intake.key_paths(account, exchange, role)
    if not who.caller.has(CONSUMER_POLICY[paths.role]):
        _refuse_role(state, request, who, paths.role)
    _check_account(state, request, who, paths.role, paths.account)
    body = await parse_body(request, VerificationReport)
    try:
        entry = await state.health.report(paths, body, reporter=who.audit_id)
    except VersionMismatch as exc:
        raise ApiError(409, "version_mismatch", str(exc)) from None
    return VerificationAnswer(
        account=paths.account,
        exchange=paths.exchange,
        role=paths.role,
        health=health_view(entry),
        checked_at=body.checked_at,
    )


def _refuse_role(
    state: BrokerState,
    request: Request,
    who: AuthenticatedCaller,
    role: str,
    action: str = "report on",
) -> None:
    other = [r for r, policy in CONSUMER_POLICY.items() if who.caller.has(policy)]
    why = f"a {other[0]} consumer's token" if other else "not a consumer's token"
    _refuse(
        state,
        request,
        who,
        audit_reason=f"{why} cannot {action} {role} keys",
        message=f"verifications of {role} keys need a token with policy "
        f"{CONSUMER_POLICY[role]} (the {role}'s own token)",
    )


def _check_account(
    state: BrokerState, request: Request, who: AuthenticatedCaller, role: str, account: str
) -> None:
    """A token bound to an account reports on that account only; a role listed in
    KEYBROKER_ACCOUNT_BOUND_REPORTS must report with a bound token."""
    bound = who.caller.account
    if bound is None and role not in state.settings.account_bound_reports:
        return  # an identity that spans accounts (the robot's AppRole by default)
    if bound == account:
        return
    how = (
        "POST /v1/site-tokens with an account"
        if role == "site"
        else "an AppRole secret ID whose metadata names the account"
    )
    if bound is None:
        audit_reason = f"{role} token not bound to an account"
        message = f"verifications of {role} keys need a token bound to the account ({how})"
    else:
        audit_reason = f"{role} token bound to another account"
        message = f"this token is bound to another account than {account}"
    _refuse(state, request, who, audit_reason=audit_reason, message=message)


def _refuse(
    state: BrokerState,
    request: Request,
    who: AuthenticatedCaller,
    *,
    audit_reason: str,
    message: str,
) -> None:
    state.metrics.auth_failure(403)
    state.audit.emit(
        "verification.refused",
        status=403,
        caller=who.audit_id,
        method=request.method,
        path=request.url.path,
        reason=audit_reason,
    )
    raise ApiError(403, "forbidden", message)


@health_router.get("/keys", response_model=KeyHealthList)
async def list_key_health(
    request: Request,
    status: str | None = None,
    exchange: str | None = None,
    role: str | None = None,
    account: str | None = None,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 1000,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> JSONResponse:
    index = state_of(request).health.index
    entries, total = index.query(
        status=parse_status(status), exchange=exchange, role=role, account=account, limit=limit
    )
    # Prebuilt dicts (Entry.listed), not one pydantic model per key: a listing of 80,000
    # keys took 1.4 s through the models (bench/health_bench.py).
    body = {
        "keys": [e.listed for e in entries],
        "total": total,
        "counts": index.counts(),
        "index_complete": index.complete,
        "index_synced_at": index.synced_at.isoformat() if index.synced_at else None,
    }
    return JSONResponse(body)


@health_router.get("/webhook-deliveries", response_model=DeliveryLog)
async def webhook_deliveries(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=DELIVERY_LOG_SIZE)] = 100,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> DeliveryLog:
    sender = state_of(request).health.webhooks
    newest = list(sender.log)[::-1][:limit]
    return DeliveryLog(
        deliveries=[
            DeliveryView(
                event_id=d.event_id,
                host=d.host,
                attempt=d.attempt,
                status=d.status,
                ok=d.ok,
                at=datetime.fromtimestamp(d.at, UTC),
                abandoned=d.abandoned,
            )
            for d in newest
        ],
        in_flight=sender.in_flight,
    )
