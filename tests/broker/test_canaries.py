"""Secrets submitted through every endpoint never come back out (DESIGN.md invariants).

Canary values (the sandbox keys' real credentials, and unique strings the sandbox does
not know) go through every endpoint and outcome: accepted, replaced, rejected, refused by
the exchange, exchange unavailable, malformed body, invalid identifiers, check. Then every
place the broker writes to is scanned: response bodies and headers, log records (all
levels, all threads), process stdout/stderr, audit lines, the metrics text and the keys'
custom_metadata in Vault. Minted site tokens are held to the same rule outside the one
response that carries them.
"""

from __future__ import annotations

import logging
import secrets

import httpx

from tests.broker.helpers import check_body, key_body
from tests.fixtures.broker import BrokerEnv, new_account


def _scan(haystacks: dict[str, str], canaries: list[str]) -> list[str]:
    leaks = []
    for where, text in haystacks.items():
        for canary in canaries:
            if canary and canary in text:
                leaks.append(f"{where} holds a canary ({canary[:3]}...)")
    return leaks


def test_canary_secrets_never_leak(broker_env: BrokerEnv, fresh_sandbox, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = fresh_sandbox
    account = new_account("canary")
    okx = sandbox.key("okx", "read_only")
    binance = sandbox.key("binance", "read_only")
    withdraw = sandbox.key("binance", "withdraw_enabled")
    unknown = {
        "api_key": "CANARYKEY" + secrets.token_hex(12),
        "secret": "CANARYSECRET" + secrets.token_hex(12),
        "passphrase": "CANARYPASS" + secrets.token_hex(6),
    }
    canaries = [
        okx.api_key,
        okx.secret,
        okx.passphrase or "",
        binance.api_key,
        binance.secret,
        withdraw.api_key,
        withdraw.secret,
        *unknown.values(),
    ]
    responses: list[httpx.Response] = []
    path = f"/v1/accounts/{account}/keys"
    with broker_env.http() as http:
        responses += [
            http.put(f"{path}/okx/site", json=key_body(okx)),  # accepted, with passphrase
            http.put(f"{path}/okx/site", json=key_body(okx)),  # replaced
            http.put(f"{path}/binance/site", json=key_body(binance)),
            http.put(f"{path}/binance/robot", json=key_body(withdraw)),  # rejected
            http.put(f"{path}/okx/robot", json={"name": "x", **unknown}),  # refused by exchange
            http.put(f"{path}/okx/ROBOT", json={"name": "x", **unknown}),  # invalid id
            http.put(f"{path}/okx/site", json={"name": 5, **unknown}),  # invalid field type
            http.put(f"{path}/okx/site", json={unknown["secret"]: 1, **unknown}),  # unknown field
            http.put(
                f"{path}/okx/site",
                content=f'{{"secret": "{unknown["secret"]}"',
                headers={"Content-Type": "application/json"},
            ),  # bad JSON
            http.post("/v1/keys/check", json=check_body(okx, "site")),
            http.post("/v1/keys/check", json={"exchange": "okx", "role": "robot", **unknown}),
            http.post(
                "/v1/keys/check", json={"exchange": "okx", "role": "robot", "api_key": unknown}
            ),
        ]
        sandbox.set_outage("okx", True)
        responses.append(http.put(f"{path}/okx/site", json=key_body(okx)))  # 503
        sandbox.set_outage("okx", False)
    with broker_env.http("site_backend") as http:
        minted = http.post("/v1/site-tokens", json={})
        wrapped = http.post("/v1/site-tokens", json={"wrap_ttl": "60s"})
    with broker_env.http("none") as http:
        metrics_text = http.get("/metrics").text

    statuses = [r.status_code for r in responses]
    assert statuses == [201, 200, 201, 422, 422, 400, 400, 400, 400, 200, 200, 400, 503]
    site_token = minted.json()["token"]
    wrap_token = wrapped.json()["wrap_token"]

    captured = capfd.readouterr()
    haystacks = {
        **{f"response {i}": r.text + repr(dict(r.headers)) for i, r in enumerate(responses)},
        "logs": "\n".join(
            f"{rec.getMessage()} {rec.args!r} {rec.__dict__!r}" for rec in caplog.records
        ),
        "stdout": captured.out,
        "stderr": captured.err,
        "audit": broker_env.audit.text(),
        "metrics": metrics_text,
    }
    for role, exchange in (("site", "okx"), ("site", "binance")):
        metadata = broker_env.metadata(role, account, exchange)
        assert metadata is not None
        haystacks[f"custom_metadata {role}/{exchange}"] = repr(metadata["custom_metadata"])
    assert _scan(haystacks, canaries) == []
    outside_token_response = {k: v for k, v in haystacks.items() if not k.startswith("response")}
    assert _scan(outside_token_response, [site_token, wrap_token]) == []
    # Only the masked form of an api_key is ever shown.
    assert responses[0].json()["api_key_masked"] == f"{okx.api_key[:4]}...{okx.api_key[-4:]}"
