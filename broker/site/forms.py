"""A key form: what the user sent (checked before anything reaches the broker) and what
came of it, worded for the page. Credentials are only passed on, never kept or shown."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from broker.ids import InvalidIdentifier, validate_name
from broker.site.broker_api import BrokerAnswer, Submission
from broker.site.guidance import advice_for


@dataclass
class FieldErrors:
    """Per-field messages of a form that was not sent to the broker."""

    errors: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.errors)


@dataclass
class SlotResult:
    """What happened to one (exchange, role) slot in this request."""

    exchange: str
    role: str
    # accepted | replaced | refused | invalid | unavailable | deleted | requested | missing
    outcome: str
    message: str
    reasons: list[dict[str, str]] = field(default_factory=list)
    field_errors: FieldErrors = field(default_factory=FieldErrors)


def parse_submission(
    form: dict[str, str], exchange: str, needs_passphrase: bool
) -> tuple[Submission | None, FieldErrors]:
    errors = FieldErrors()
    name = form.get("name", "").strip()
    if not name:
        errors.errors["name"] = "Give the key a name, for example “main account”."
    else:
        try:
            validate_name(name)  # the broker's own rule, checked before anything is sent
        except InvalidIdentifier as exc:
            errors.errors["name"] = f"The name {str(exc).removeprefix('name: ')}."
    api_key, secret = form.get("api_key", "").strip(), form.get("secret", "").strip()
    passphrase = form.get("passphrase", "").strip() or None
    if not api_key:
        errors.errors["api_key"] = "Paste the API key the exchange showed you."
    if not secret:
        errors.errors["secret"] = "Paste the secret the exchange showed you."
    if needs_passphrase and not passphrase:
        errors.errors["passphrase"] = f"{exchange} keys have a passphrase: enter it."
    if errors:
        return None, errors
    return Submission(name, api_key, secret, passphrase), errors


def submit_result(exchange: str, role: str, answer: BrokerAnswer) -> SlotResult:
    """The broker's answer to a submission (docs/contracts.md §3), for the slot."""
    reasons = [
        {
            "code": str(r.get("code", "")),
            "severity": str(r.get("severity", "")),
            "message": str(r.get("message", "")),
            "advice": advice_for(str(r.get("code", ""))),
        }
        for r in (answer.body.get("warnings") if answer.ok else answer.reasons) or []
    ]
    if answer.status == 201:
        return SlotResult(exchange, role, "accepted", "Key accepted and stored.", reasons)
    if answer.status == 200:
        message = "New key accepted; the old one is gone."
        return SlotResult(exchange, role, "replaced", message, reasons)
    if answer.error == "key_rejected":
        return SlotResult(exchange, role, "refused", "Key refused; nothing was stored.", reasons)
    if answer.status == 503:
        message = answer.message or "Try again later."
        return SlotResult(exchange, role, "unavailable", message, reasons)
    # 400: the broker's message names the field, never its value (docs/broker.md).
    message = answer.message or "The key was not accepted."
    return SlotResult(exchange, role, "invalid", message, reasons)


class ResultBox:
    """Results of POSTs, kept for the one GET they redirect to (Post/Redirect/Get).

    A form POST answered with a page stays in the browser's history with its body, to be
    sent again on reload: with the secret in it. Answering 303 leaves only the GET there.
    A result is taken once, only by the browser that posted (its CSRF cookie), and at
    most `limit` wait at a time (the oldest go first).
    """

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._waiting: OrderedDict[str, tuple[str, SlotResult]] = OrderedDict()

    def put(self, owner: str, result: SlotResult) -> str:
        token = secrets.token_urlsafe(16)
        self._waiting[token] = (owner, result)
        while len(self._waiting) > self._limit:
            self._waiting.popitem(last=False)
        return token

    def take(self, owner: str | None, token: str | None) -> SlotResult | None:
        if not owner or not token or token not in self._waiting:
            return None
        if self._waiting[token][0] != owner:
            return None
        return self._waiting.pop(token)[1]
