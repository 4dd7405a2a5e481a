"""The sandbox's HTTP layer (aiohttp): exchange traffic under `/<exchange>/...`, controls
under `/_sandbox/...`. Thin on purpose: exchange behaviour lives in the exchange modules,
state in `state.py`.

No access log: request lines carry api keys and signatures.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from keybroker_dev.sandbox.base import ExchangeSim, Reply, SandboxRequest
from keybroker_dev.sandbox.keys import SandboxKey, SandboxKeyError
from keybroker_dev.sandbox.state import Fault, SandboxState, SandboxStateError

MAX_BODY_BYTES = 64 * 1024
CONTROL_PREFIX = "/_sandbox"

STATE_KEY = web.AppKey("state", SandboxState)
SIMS_KEY: web.AppKey[Mapping[str, ExchangeSim]] = web.AppKey("sims")


def _reply(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers=dict(reply.headers),
    )


async def exchange_request(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    sims: Mapping[str, ExchangeSim] = request.app[SIMS_KEY]
    exchange = request.match_info["exchange"]
    sim = sims.get(exchange)
    if sim is None:
        return web.json_response({"error": f"no sandboxed exchange {exchange!r}"}, status=404)
    if state.is_down(exchange):
        # An outage looks like a dead host behind a load balancer: the connection drops
        # without an answer, and the client sees a network error.
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    delay = state.latency_for(exchange)
    if delay:
        await asyncio.sleep(delay)
    body = await request.read()
    # The endpoint path as the client signed it: everything after the `/<exchange>` segment,
    # still percent-encoded as sent.
    _, _, endpoint_path = request.rel_url.raw_path.lstrip("/").partition("/")
    sandbox_request = SandboxRequest(
        exchange=exchange,
        method=request.method,
        path="/" + endpoint_path,
        raw_query=request.rel_url.raw_query_string,
        headers=request.headers,
        body=body,
        host=request.host,
        client_ip=state.client_ip,
    )
    state.count(sim.presented_key(sandbox_request))
    fault = state.take_fault(exchange)
    if fault is Fault.TIMEOUT:
        await asyncio.sleep(state.hang_seconds)
        return web.Response(status=504, text="Gateway Time-out")
    if fault is not None:
        return _reply(sim.fault(fault, sandbox_request))
    return _reply(sim.respond(sandbox_request, state))


# --- controls -----------------------------------------------------------------------------

Control = Callable[[SandboxState, dict[str, Any]], Any]


def _control(action: Control) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            payload = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            result = action(request.app[STATE_KEY], payload)
        except (SandboxStateError, SandboxKeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad control request: {exc}"}, status=400)
        return web.json_response(result if result is not None else {"ok": True})

    return handler


def _latency(state: SandboxState, body: dict[str, Any]) -> None:
    state.set_latency(float(body["seconds"]), body.get("exchange"))


def _inject(state: SandboxState, body: dict[str, Any]) -> None:
    state.inject(str(body["exchange"]), str(body["fault"]), int(body.get("count", 1)))


def _outage(state: SandboxState, body: dict[str, Any]) -> None:
    state.set_outage(str(body["exchange"]), bool(body.get("down", True)))


def _hang(state: SandboxState, body: dict[str, Any]) -> None:
    state.set_hang(float(body["seconds"]))


def _client_ip(state: SandboxState, body: dict[str, Any]) -> None:
    state.client_ip = str(ipaddress.ip_address(str(body["ip"])))


def _request_count(state: SandboxState, body: dict[str, Any]) -> dict[str, int]:
    return {"count": state.request_count(str(body["api_key"]))}


def _add_key(state: SandboxState, body: dict[str, Any]) -> dict[str, str]:
    key = SandboxKey.from_json(body)
    state.add_key(key)
    return {"exchange": key.exchange, "label": key.label}


def _key_update(state: SandboxState, body: dict[str, Any]) -> dict[str, str]:
    changes = dict(body["changes"])
    if changes.get("expires_at") is not None:
        changes["expires_at"] = datetime.fromisoformat(str(changes["expires_at"]))
    key = state.update_key(str(body["exchange"]), str(body["api_key"]), **changes)
    return {"exchange": key.exchange, "label": key.label}


def _key_delete(state: SandboxState, body: dict[str, Any]) -> None:
    state.remove_key(str(body["exchange"]), str(body["api_key"]))


def _reset(state: SandboxState, body: dict[str, Any]) -> None:
    state.reset()


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "faults": [fault.value for fault in Fault]})


def build_app(state: SandboxState, sims: Mapping[str, ExchangeSim]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state
    app[SIMS_KEY] = dict(sims)
    controls: dict[str, Control] = {
        "reset": _reset,
        "latency": _latency,
        "inject": _inject,
        "outage": _outage,
        "hang": _hang,
        "client-ip": _client_ip,
        "request-count": _request_count,
        "keys": _add_key,
        "key-update": _key_update,
        "key-delete": _key_delete,
    }
    app.router.add_get(f"{CONTROL_PREFIX}/health", _health)
    for name, action in controls.items():
        app.router.add_post(f"{CONTROL_PREFIX}/{name}", _control(action))
    app.router.add_route("*", "/{exchange}/{tail:.*}", exchange_request)
    return app
