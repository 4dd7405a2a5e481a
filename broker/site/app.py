"""`create_site_app`: the key page (server-rendered forms; static/page.js enhances them).

Every page works without JavaScript. Submitted credentials go from the form body to the
broker and nowhere else: no answer, log line or redirect carries them, and the forms are
rendered empty.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from broker.config import Settings
from broker.health.status import KeyStatus
from broker.ids import InvalidIdentifier, validate_account
from broker.names import ROLES, Role
from broker.site.broker_api import BrokerAnswer, BrokerApi, BrokerUnavailable
from broker.site.config import SiteSettings
from broker.site.forms import ResultBox, SlotResult, parse_submission, submit_result
from broker.site.guidance import (
    CONSUMER,
    advice_for,
    health_text,
    role_rules,
    status_text,
    when,
)
from broker.site.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    Csrf,
    SecurityHeaders,
    same_origin,
)

log = logging.getLogger("keybroker.site")

MAX_FORM_BYTES = 16 * 1024
# Keys the operator view lists at once (the broker's `limit`); the counts cover all.
OPERATOR_LIMIT = 1000


def passphrase_exchanges(exchanges: list[str]) -> frozenset[str]:
    """The enabled exchanges whose keys have a passphrase (the adapters say which)."""
    from broker.exchanges.registry import get_adapter

    return frozenset(
        e for e in exchanges if (a := get_adapter(e)) is not None and a.requires_passphrase
    )


def _refused(answer: BrokerAnswer) -> BrokerUnavailable:
    """An answer the page cannot act on (e.g. 401: the intake token is wrong)."""
    return BrokerUnavailable(f"the broker answered {answer.status} {answer.error}".rstrip())


class KeyPage:
    def __init__(self, site: SiteSettings, rules: Settings, api: BrokerApi) -> None:
        self.site = site
        self.rules = rules
        self.api = api
        self.exchanges = list(rules.exchanges)
        self.needs_passphrase = passphrase_exchanges(self.exchanges)
        self.csrf = Csrf()
        self.results = ResultBox()
        self.templates = Environment(
            loader=PackageLoader("broker.site", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # --- helpers ------------------------------------------------------------------------

    def _render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE) or Csrf.new_cookie()
        html = self.templates.get_template(template).render(
            csrf_field=CSRF_FIELD, csrf_token=self.csrf.token_for(cookie), **context
        )
        response = HTMLResponse(html, status_code=status)
        # Also here: error pages are sent from outside the SecurityHeaders middleware.
        response.headers.update({k.decode(): v.decode() for k, v in SECURITY_HEADERS})
        if request.cookies.get(CSRF_COOKIE) != cookie:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    def _account(self, request: Request) -> str:
        try:
            return validate_account(request.path_params["account"])
        except InvalidIdentifier:
            raise HTTPException(404) from None

    def _slot(self, request: Request) -> tuple[str, str, Role]:
        account = self._account(request)
        exchange, role = request.path_params["exchange"], request.path_params["role"]
        if exchange not in self.exchanges or role not in ROLES:
            raise HTTPException(404)
        return account, exchange, role

    async def _form(self, request: Request) -> dict[str, str]:
        """The urlencoded body, after the CSRF check; 413 above MAX_FORM_BYTES."""
        if not same_origin(request.headers.get("origin"), request.url):
            raise HTTPException(403)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_FORM_BYTES:
                raise HTTPException(413)
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400) from None
        form = {k: v[0] for k, v in parsed.items()}
        if not self.csrf.valid(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
            raise HTTPException(403)
        return form

    async def _keys(self, account: str) -> dict[tuple[str, str], dict[str, Any]]:
        answer = await self.api.list_keys(account)
        if not answer.ok:
            raise _refused(answer)
        keys = answer.body.get("keys", [])
        return {(k["exchange"], k["role"]): k for k in keys}

    def _cards(
        self, keys: dict[tuple[str, str], dict[str, Any]], result: SlotResult | None
    ) -> list[dict[str, Any]]:
        cards = []
        for exchange in self.exchanges:
            slots = []
            for role in ROLES:
                view = keys.get((exchange, role))
                mine = (
                    result
                    if result and (result.exchange, result.role) == (exchange, role)
                    else None
                )
                slots.append(
                    {
                        "exchange": exchange,
                        "role": role,
                        "id": f"{exchange}-{role}",
                        "rules": role_rules(role, exchange, self.rules),
                        "key": view,
                        "health": health_text(view) if view else None,
                        "warnings": [
                            {**w, "advice": advice_for(w.get("code", ""))}
                            for w in (view or {}).get("warnings", [])
                        ],
                        "result": mine,
                        "passphrase": exchange in self.needs_passphrase,
                    }
                )
            cards.append({"exchange": exchange, "slots": slots})
        return cards

    async def _account_page(
        self, request: Request, account: str, result: SlotResult | None = None
    ) -> HTMLResponse:
        try:
            keys = await self._keys(account)
        except BrokerUnavailable as exc:
            return self._unavailable(request, exc)
        return self._render(
            request,
            "account.html",
            account=account,
            cards=self._cards(keys, result),
            result=result,
        )

    def _unavailable(self, request: Request, why: BrokerUnavailable) -> HTMLResponse:
        # The message holds a status and an error code or an exception type, no values.
        log.warning("broker call failed: %s", why)
        return self._render(
            request,
            "error.html",
            503,
            title="The key service is not answering",
            message="Nothing was changed. Try again in a minute.",
        )

    # --- routes -------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        account = request.query_params.get("account")
        error = None
        if account is not None:
            try:
                validate_account(account)
                return RedirectResponse(f"/accounts/{quote(account)}", status_code=303)
            except InvalidIdentifier as exc:
                error = f"The account {str(exc).removeprefix('account: ')}."
        return self._render(request, "index.html", 400 if error else 200, error=error)

    async def account(self, request: Request) -> Response:
        result = self.results.take(
            request.cookies.get(CSRF_COOKIE), request.query_params.get("result")
        )
        return await self._account_page(request, self._account(request), result)

    def _show(self, request: Request, account: str, result: SlotResult) -> Response:
        """303 to the account page, which shows `result` once (see ResultBox)."""
        owner = request.cookies.get(CSRF_COOKIE, "")  # present: _form checked it
        token = self.results.put(owner, result)
        anchor = f"{result.exchange}-{result.role}-result"
        return RedirectResponse(
            f"/accounts/{quote(account)}?result={token}#{anchor}", status_code=303
        )

    def _failed(self, exchange: str, role: str, why: BrokerUnavailable) -> SlotResult:
        # The message holds a status and an error code or an exception type, no values.
        log.warning("broker call failed: %s", why)
        message = "The key service is not answering; nothing was changed. Try again later."
        return SlotResult(exchange, role, "unavailable", message)

    async def submit(self, request: Request) -> Response:
        account, exchange, role = self._slot(request)
        form = await self._form(request)
        submission, errors = parse_submission(form, exchange, exchange in self.needs_passphrase)
        if errors:
            result = SlotResult(
                exchange,
                role,
                "invalid",
                "The key was not sent: see the fields.",
                field_errors=errors,
            )
            return self._show(request, account, result)
        assert submission is not None
        try:
            answer = await self.api.put_key(account, exchange, role, submission)
        except BrokerUnavailable as exc:
            return self._show(request, account, self._failed(exchange, role, exc))
        if answer.status in (401, 403):  # our intake token is wrong: not the user's doing
            return self._show(request, account, self._failed(exchange, role, _refused(answer)))
        return self._show(request, account, submit_result(exchange, role, answer))

    async def confirm_delete(self, request: Request) -> Response:
        account, exchange, role = self._slot(request)
        try:
            answer = await self.api.get_key(account, exchange, role)
        except BrokerUnavailable as exc:
            return self._unavailable(request, exc)
        if answer.status == 404:
            raise HTTPException(404)
        if not answer.ok:
            return self._unavailable(request, _refused(answer))
        return self._render(
            request,
            "confirm_delete.html",
            account=account,
            exchange=exchange,
            role=role,
            key=answer.body,
        )

    async def delete(self, request: Request) -> Response:
        account, exchange, role = self._slot(request)
        await self._form(request)
        try:
            answer = await self.api.delete_key(account, exchange, role)
        except BrokerUnavailable as exc:
            return self._show(request, account, self._failed(exchange, role, exc))
        if answer.ok or answer.status == 404:
            message = (
                "Key deleted. The robot stops trading on this exchange until a new key is entered."
                if role == "robot"
                else "Key deleted. The site shows nothing for this exchange until a new key is "
                "entered."
            )
            return self._show(request, account, SlotResult(exchange, role, "deleted", message))
        return self._show(request, account, self._failed(exchange, role, _refused(answer)))

    async def check_now(self, request: Request) -> Response:
        """Ask the key's consumer (the robot or the site) to verify it now; the status box
        says it waits until the verification arrives (docs/key-page.md "Check now")."""
        account, exchange, role = self._slot(request)
        await self._form(request)
        try:
            answer = await self.api.request_verification(account, exchange, role)
        except BrokerUnavailable as exc:
            return self._show(request, account, self._failed(exchange, role, exc))
        who = CONSUMER[role]
        if answer.status == 202:
            message = f"Check requested: {who} checks the key with the exchange shortly."
            return self._show(request, account, SlotResult(exchange, role, "requested", message))
        if answer.status == 404:
            message = "There is no key to check: enter one below."
            return self._show(request, account, SlotResult(exchange, role, "missing", message))
        return self._show(request, account, self._failed(exchange, role, _refused(answer)))

    async def keys_json(self, request: Request) -> Response:
        """The statuses the page polls for (static/page.js): no secrets, masked keys only."""
        account = self._account(request)
        try:
            keys = await self._keys(account)
        except BrokerUnavailable:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return JSONResponse(
            {
                "keys": [
                    {"id": f"{e}-{r}", **health_text(view).to_json()}
                    for (e, r), view in sorted(keys.items())
                ]
            }
        )

    async def operator(self, request: Request) -> Response:
        """Keys by status across all accounts, from the broker's status listing."""
        status = request.query_params.get("status") or None
        if status is not None and status not in {s.value for s in KeyStatus}:
            return self._render(
                request,
                "operator.html",
                400,
                error="Choose one of the listed statuses.",
                **self._operator_context(None, {}),
            )
        try:
            answer = await self.api.key_health(status, OPERATOR_LIMIT)
        except BrokerUnavailable as exc:
            return self._unavailable(request, exc)
        if not answer.ok:
            return self._unavailable(request, _refused(answer))
        return self._render(request, "operator.html", **self._operator_context(status, answer.body))

    def _operator_context(self, chosen: str | None, body: dict[str, Any]) -> dict[str, Any]:
        by_status: dict[str, list[dict[str, Any]]] = {}
        for item in body.get("keys", []):
            health = item["health"]
            by_status.setdefault(health["status"], []).append(
                {
                    **item,
                    "text": health_text(item),
                    "checked": when(health["verified_at"]) if health.get("verified_at") else "",
                    "since": when(str(health.get("changed_at", ""))),
                }
            )
        counts: dict[str, dict[str, int]] = body.get("counts", {})
        known = [s.value for s in KeyStatus]
        order = known + sorted((set(by_status) | set(counts)) - set(known))  # a newer broker's
        exchanges = sorted({e for per in counts.values() for e in per})
        return {
            "chosen": chosen,
            "statuses": [(s, status_text(s).label) for s in known],
            "exchanges": exchanges,
            "counts": [
                {
                    "status": s,
                    "text": status_text(s),
                    "per": [counts.get(s, {}).get(e, 0) for e in exchanges],
                    "total": sum(counts.get(s, {}).values()),
                }
                for s in order
                if counts.get(s)
            ],
            "groups": [
                {
                    "status": s,
                    "text": status_text(s),
                    "rows": sorted(
                        by_status[s], key=lambda i: (i["account"], i["exchange"], i["role"])
                    ),
                }
                for s in order
                if s in by_status
            ],
            "shown": sum(len(rows) for rows in by_status.values()),
            "total": body.get("total", 0),
            "complete": body.get("index_complete", True),
        }

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        titles = {
            400: "The form could not be read",
            403: "The form expired: reload the page and try again",
            404: "Not found",
            413: "The form is too large",
        }
        if status == 500:
            log.error("key page error: %s", type(exc).__name__)  # the type only: no values
        return self._render(
            request,
            "error.html",
            status,
            title=titles.get(status, "Something went wrong"),
            message="Nothing was changed.",
        )


def create_site_app(site: SiteSettings, rules: Settings, api: BrokerApi | None = None) -> Starlette:
    """The key page. `rules`: the broker's settings (exchanges, egress IPs, rule switches)."""
    if api is None:
        token = site.intake_token.get_secret_value() if site.intake_token else ""
        api = BrokerApi(site.broker_url, token, site.broker_timeout)
    page = KeyPage(site, rules, api)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await page.api.aclose()

    slot = "/accounts/{account}/keys/{exchange}/{role}"
    app = Starlette(
        routes=[
            Route("/", page.index),
            Route("/healthz", page.healthz),
            Route("/operator", page.operator),
            Route("/accounts/{account}", page.account),
            Route("/accounts/{account}/keys.json", page.keys_json),
            Route(slot, page.submit, methods=["POST"]),
            Route(slot + "/check", page.check_now, methods=["POST"]),
            Route(slot + "/delete", page.confirm_delete, methods=["GET"]),
            Route(slot + "/delete", page.delete, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("broker.site", "static")]), name="static"),
        ],
        exception_handlers={HTTPException: page.http_error, Exception: page.http_error},
        lifespan=lifespan,
    )
    app.state.page = page
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=site.allowed_hosts)
    app.add_middleware(SecurityHeaders)
    return app
