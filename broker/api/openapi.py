"""The OpenAPI document, made to match what the API really does.

FastAPI derives most of it from the routes; the broker parses bodies itself (after
authentication, see routes.py) and checks identifiers with broker/ids.py, so what
FastAPI cannot see is stated here: the identifier patterns (ids.py), the enabled
exchanges, the optional body of POST /v1/site-tokens, and every status each operation
can answer (tests/broker/test_schemathesis.py holds the document to the server).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from broker import ids
from broker.config import Settings
from broker.health.status import KeyStatus
from broker.site_tokens import MAX_WRAP_TTL

# Statuses any authenticated /v1 operation can answer, and those of the ones with a body.
_COMMON = {
    "400": "invalid identifier or request",
    "401": "no token, or one Vault does not know",
    "403": "the token lacks the endpoint's policy",
    "429": "the caller (or, for checks, the exchange) is over its rate limit",
    "503": "Vault or the exchange is unavailable",
}
_BODY = {
    "408": "the body did not arrive within the body timeout",
    "413": "the body is larger than 16 KiB",
    "415": "the body is not application/json",
}
_EXTRA = {
    ("put", "/v1/accounts/{account}/keys/{exchange}/{role}"): {
        "422": "the exchange or the rules refused the key"
    },
    ("get", "/v1/accounts/{account}/keys/{exchange}/{role}"): {"404": "no such key"},
    ("delete", "/v1/accounts/{account}/keys/{exchange}/{role}"): {"404": "no such key"},
    ("post", "/v1/accounts/{account}/keys/{exchange}/{role}/verification-requests"): {
        "404": "no such key"
    },
}
# Query parameters checked with ids.py (elsewhere `role` and `account` are plain filters).
_CHECKED_QUERY = {"/v1/verification-requests": ("role", "account")}
_METRICS = {
    "401": _COMMON["401"],
    "429": "the caller is over its rate limit",
    "503": "Vault is unavailable",
}


def install(app: FastAPI, settings: Settings) -> None:
    """Replace `app.openapi` with the corrected document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            _correct(doc, settings)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _correct(doc: dict[str, Any], settings: Settings) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    patterns = {
        "account": {"type": "string", "pattern": f"^{ids.ACCOUNT_PATTERN.pattern}$"},
        "exchange": {"type": "string", "enum": sorted(settings.exchanges)},
        "role": {"type": "string", "enum": list(ids.ROLES)},
    }
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for parameter in op.get("parameters", []):
                checked = parameter["in"] == "path" or (
                    parameter["name"] in _CHECKED_QUERY.get(path, ())
                )
                if checked and parameter["name"] in patterns:
                    parameter["schema"] = patterns[parameter["name"]]
                elif parameter["in"] == "query" and parameter["name"] == "status":
                    parameter["schema"] = {"type": "string", "enum": [s.value for s in KeyStatus]}
            if path.startswith("/v1/"):
                statuses = dict(_COMMON)
                if "requestBody" in op:
                    statuses |= _BODY
                statuses |= _EXTRA.get((method, path), {})
            elif path == "/metrics":
                statuses = dict(_METRICS)
                op["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
            else:
                continue
            responses = {code: answer for code, answer in op["responses"].items() if code[0] == "2"}
            for code, description in sorted(statuses.items()):
                responses[code] = {"description": description, "content": error}
            op["responses"] = responses
    site_tokens = doc["paths"]["/v1/site-tokens"]["post"]
    site_tokens["requestBody"]["required"] = False  # every field is optional; {} or nothing
    check = _body(doc, "/v1/keys/check")
    check["exchange"] = patterns["exchange"]
    check["role"] = patterns["role"]
    tokens = _body(doc, "/v1/site-tokens")
    tokens["ttl"] = _duration(settings.site_token_max_ttl, "5m")
    tokens["wrap_ttl"] = _duration(MAX_WRAP_TTL, "60s")


def _body(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The properties of a POST body schema (inlined by routes.py `_body_schema`)."""
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    properties: dict[str, Any] = body["schema"]["properties"]
    return properties


def _duration(maximum: float, example: str) -> dict[str, Any]:
    """Seconds (integer), or a string of seconds, minutes or hours, from 1s to `maximum`.
    The range is part of the pattern so that the document promises nothing the API
    refuses (broker/site_tokens.py parse_ttl)."""
    top = int(maximum)
    forms = [f"{_upto(top)}s?"]
    for unit, size in (("m", 60), ("h", 3600)):
        if top // size:
            forms.append(f"{_upto(top // size)}{unit}")
    return {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": top},
            {"type": "string", "pattern": f"^(?:{'|'.join(forms)})$"},
            {"type": "null"},
        ],
        "description": f"1s to {top}s. Go durations such as 14m59s are accepted as well "
        "(broker/durations.py); the pattern lists the single-unit forms.",
        "examples": [example],
    }


def _upto(n: int) -> str:
    """A regex for the decimal integers 1..n (no leading zeros)."""
    digits = str(n)
    parts = ["[1-9]" + "[0-9]" * (length - 1) for length in range(1, len(digits))]
    for i, char in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(char) > low:
            parts.append(f"{digits[:i]}[{low}-{int(char) - 1}]" + "[0-9]" * (len(digits) - i - 1))
    parts.append(digits)
    return f"(?:{'|'.join(parts)})"
