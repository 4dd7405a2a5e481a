"""The routes of docs/contracts.md §3. Each one parses, calls the workflow, and shapes the answer.

Bodies are parsed here (after authentication) rather than by FastAPI's body injection,
so that an unauthenticated caller always gets 401 first and a malformed body gets the
contract's 400 without the offending input echoed back.
"""

from __future__ import annotations

from typing import Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from broker.api.auth import AuthenticatedCaller, bearer, require
from broker.api.errors import ApiError
from broker.api.schemas import (
    CheckRequest,
    ErrorBody,
    KeyList,
    KeySubmission,
    KeyView,
    SiteTokenRequest,
    SiteTokenView,
    WrappedSiteTokenView,
    key_view,
)
from broker.api.state import state_of
from broker.health.status import KeyStatus
from broker.layout import INTAKE_POLICY, SITE_BACKEND_POLICY
from broker.reasons import CheckResult
from broker.site_tokens import SiteToken

Model = TypeVar("Model", bound=BaseModel)

intake_caller = require(INTAKE_POLICY)
site_backend_caller = require(SITE_BACKEND_POLICY)
any_caller = require(None)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 413, 422, 503)
}


def _body_schema(model: type[BaseModel]) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def parse_body(request: Request, model: type[Model]) -> Model:
    raw = await request.body()
    if not raw and model is SiteTokenRequest:
        raw = b"{}"  # every field of a site-token request is optional
    elif not is_json(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _describe(exc, model)) from None


def is_json(content_type: str | None) -> bool:
    """`application/json`, with parameters (charset) or not."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json"


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """Known field names and pydantic's own wording, never input values, and never the
    name of an unknown field (a client may have sent a secret as a field name)."""
    known = set(model.model_fields)
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"] if isinstance(p, str | int))
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field (the fields are: {', '.join(model.model_fields)})")
        elif loc and loc.split(".")[0] not in known:
            parts.append("the body must be a JSON object of the documented fields")
        elif err["type"].startswith("json"):
            parts.append("the body is not valid JSON")
        else:
            parts.append(f"{loc or 'body'}: {err['msg']}")
    return "; ".join(parts) or "the request is malformed"


def parse_status(status: str | None) -> KeyStatus | None:
    """A `?status=` filter value (400 when it names no status)."""
    if status is None:
        return None
    if status not in KeyStatus._value2member_map_:
        names = ", ".join(s.value for s in KeyStatus)
        raise ApiError(400, "invalid_request", f"status must be one of {names}")
    return KeyStatus(status)


router = APIRouter(prefix="/v1", responses=_ERRORS)


@router.put(
    "/accounts/{account}/keys/{exchange}/{role}",
    response_model=KeyView,
    status_code=201,
    responses={200: {"model": KeyView, "description": "an existing key was replaced"}},
    openapi_extra=_body_schema(KeySubmission),
)
async def put_key(
    account: str,
    exchange: str,
    role: str,
    request: Request,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> JSONResponse:
    return await submit_key(request, account, exchange, role, who)


async def submit_key(
    request: Request, account: str, exchange: str, role: str, who: AuthenticatedCaller
) -> JSONResponse:
    """PUT /v1/accounts/{account}/keys/{exchange}/{role} for an authenticated caller
    (also served by broker/api/hot.py)."""
    intake = state_of(request).intake
    paths = intake.key_paths(account, exchange, role)  # 400 before the body is even read
    body = await parse_body(request, KeySubmission)
    credentials = intake.credentials(
        body.api_key.get_secret_value(),
        body.secret.get_secret_value(),
        body.passphrase.get_secret_value() if body.passphrase else None,
    )
    outcome = await intake.submit(
        paths.account, paths.exchange, paths.role, body.name, credentials, caller=who.audit_id
    )
    health = state_of(request).health
    health.key_stored(outcome.record)
    record = outcome.record
    view = key_view(record, outcome.warnings, health.view(record))
    return JSONResponse(view.model_dump(mode="json"), status_code=201 if outcome.created else 200)


@router.get("/accounts/{account}/keys", response_model=KeyList)
async def list_keys(
    account: str,
    request: Request,
    status: str | None = None,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> KeyList:
    """`?status=` keeps the keys in that health status (docs/key-health.md)."""
    wanted = parse_status(status)
    state = state_of(request)
    records = await state.intake.list(account)
    views = [
        key_view(r, health=state.health.view(r), requested_at=state.health.requested_at(r))
        for r in records
    ]
    return KeyList(
        keys=[v for v in views if wanted is None or (v.health and v.health.status == wanted)]
    )


@router.get("/accounts/{account}/keys/{exchange}/{role}", response_model=KeyView)
async def get_key(
    account: str,
    exchange: str,
    role: str,
    request: Request,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> KeyView:
    state = state_of(request)
    record = await state.intake.get(account, exchange, role)
    return key_view(
        record, health=state.health.view(record), requested_at=state.health.requested_at(record)
    )


@router.delete("/accounts/{account}/keys/{exchange}/{role}", status_code=204)
async def delete_key(
    account: str,
    exchange: str,
    role: str,
    request: Request,
    who: AuthenticatedCaller = Depends(intake_caller),
) -> Response:
    state = state_of(request)
    await state.intake.delete(account, exchange, role, caller=who.audit_id)
    state.health.key_deleted(account, exchange, role)
    return Response(status_code=204)


@router.post("/keys/check", response_model=CheckResult, openapi_extra=_body_schema(CheckRequest))
async def check_key(
    request: Request, who: AuthenticatedCaller = Depends(intake_caller)
) -> CheckResult:
    intake = state_of(request).intake
    body = await parse_body(request, CheckRequest)
    credentials = intake.credentials(
        body.api_key.get_secret_value(),
        body.secret.get_secret_value(),
        body.passphrase.get_secret_value() if body.passphrase else None,
    )
    return await intake.check(body.exchange, body.role, credentials, caller=who.audit_id)


@router.post(
    "/site-tokens",
    status_code=201,
    response_model=SiteTokenView | WrappedSiteTokenView,
    openapi_extra=_body_schema(SiteTokenRequest),
)
async def create_site_token(
    request: Request, who: AuthenticatedCaller = Depends(site_backend_caller)
) -> JSONResponse:
    return await mint_site_token(request, who)


async def mint_site_token(request: Request, who: AuthenticatedCaller) -> JSONResponse:
    """POST /v1/site-tokens for an authenticated caller (also served by broker/api/hot.py)."""
    state = state_of(request)
    body = await parse_body(request, SiteTokenRequest)
    ttl = state.minter.ttl(body.ttl)
    wrap_ttl = state.minter.wrap_ttl(
        body.wrap_ttl if body.wrap_ttl is not None else request.headers.get("x-vault-wrap-ttl")
    )
    # Minted with the caller's own token (already authenticated as a site backend):
    # the broker's identity cannot create site tokens (broker/site_tokens.py).
    credentials = await bearer(request)
    if credentials is None:  # authenticate() already refused this; kept for type safety
        raise ApiError(401, "unauthorized", "missing token")
    minted = await state.minter.mint(credentials.credentials, ttl, wrap_ttl, body.account)
    wrapped = not isinstance(minted, SiteToken)
    state.metrics.site_token_minted(wrapped)
    state.audit.emit(
        "site_token.minted",
        caller=who.audit_id,
        ttl=int(ttl),
        wrapped=wrapped,
        account=body.account,
    )
    if isinstance(minted, SiteToken):
        view: BaseModel = SiteTokenView(
            token=minted.token,
            ttl=minted.ttl,
            expires_at=minted.expires_at,
            policies=minted.policies,
            account=minted.account,
        )
    else:
        view = WrappedSiteTokenView(wrap_token=minted.wrap_token, wrap_ttl=minted.wrap_ttl)
    return JSONResponse(view.model_dump(mode="json"), status_code=201)


open_router = APIRouter()


@open_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@open_router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(request: Request) -> JSONResponse:
    ready, detail = await to_thread.run_sync(state_of(request).session.health)
    if ready:
        return JSONResponse({"status": "ready"})
    raise ApiError(503, "vault_unavailable", detail, headers={"Retry-After": "2"})


@open_router.get("/metrics", response_class=Response)
async def metrics(request: Request, who: AuthenticatedCaller = Depends(any_caller)) -> Response:
    m = state_of(request).metrics
    return Response(m.render(), media_type=m.content_type)
