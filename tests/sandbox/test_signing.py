"""Signing details below what one ccxt call shows: requests ccxt signed are captured and
then replayed with a header dropped, a parameter added or a nonce reused; key versions,
signed hosts, asymmetric keys and token grants are exercised one by one. Expected codes
and texts: docs/facts/exchanges.md, per exchange ("Signing" and "Errors" items).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from keybroker_dev.sandbox import SandboxKey, SandboxServer
from keybroker_dev.sandbox.keys import new_key
from tests.sandbox.ccxt_client import client
from tests.sandbox.specs import BY_NAME, SPECS, Spec


@dataclass
class Captured:
    url: str
    method: str
    headers: dict[str, str]
    body: str | None


async def capture(sandbox: SandboxServer, spec: Spec, key: SandboxKey, **over: Any) -> Captured:
    """The request ccxt signs for `spec`'s self-inspection call, without sending it."""
    instance = client(spec.exchange, sandbox.exchange_urls[spec.exchange], key, **over)
    seen: list[Captured] = []

    async def fake_fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None):
        seen.append(Captured(url, method, dict(headers or {}), body))
        return {}

    instance.fetch = fake_fetch
    try:
        await getattr(instance, spec.method)(spec.params(key))
    finally:
        await instance.close()
    return seen[0]


async def send(request: Captured) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            request.method, request.url, headers=request.headers, data=request.body
        ) as response,
    ):
        return response.status, await response.text()


# --- a missing credential is refused with the exchange's own code ---------------------------

MISSING = {
    # exchange: (header or query parameter to drop, HTTP status, code/text in the body)
    "binance": ("X-MBX-APIKEY", 401, '"code":-2014'),
    "okx": ("OK-ACCESS-PASSPHRASE", 401, '"code":"50104"'),
    "bybit": ("X-BAPI-SIGN", 200, '"retCode":10004'),
    "kucoin": ("KC-API-PASSPHRASE", 401, '"code":"400001"'),
    "gate": ("SIGN", 401, "MISSING_REQUIRED_HEADER"),
    "bitget": ("ACCESS-PASSPHRASE", 400, '"code":"40011"'),
    "htx": ("?Signature", 200, "Missing required parameter"),
    "bingx": ("?signature", 200, '"code":100412'),
    "kraken": ("API-Sign", 200, "EAPI:Invalid key"),
    "mexc": ("X-MEXC-APIKEY", 400, '"code":700001'),
    "coinbase": ("CB-ACCESS-SIGN", 401, "Unauthorized"),
    "deribit": ("Authorization", 400, '"code":10000'),
}


def _drop(request: Captured, name: str) -> Captured:
    if name.startswith("?"):
        base, _, query = request.url.partition("?")
        kept = [p for p in query.split("&") if not p.startswith(name[1:] + "=")]
        assert len(kept) < len(query.split("&")), f"{name} was not in the query"
        return Captured(f"{base}?{'&'.join(kept)}", request.method, request.headers, request.body)
    assert name in request.headers, f"{name} was not sent"
    headers = {k: v for k, v in request.headers.items() if k != name}
    return Captured(request.url, request.method, headers, request.body)


@pytest.mark.parametrize("spec", SPECS, ids=str)
async def test_missing_credential_is_refused(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    name, status, code = MISSING[spec.exchange]
    key = fresh_sandbox.key(spec.exchange, "read_only")
    signed = await capture(fresh_sandbox, spec, key)
    assert (await send(signed))[0] == 200  # the untouched request passes
    answer_status, body = await send(_drop(signed, name))
    assert answer_status == status
    assert code in body
    # And through ccxt itself: every exchange's answer makes it raise AuthenticationError.
    instance = client(spec.exchange, fresh_sandbox.exchange_urls[spec.exchange], key)
    original_sign = instance.sign

    def sign_then_drop(*args: Any, **kwargs: Any) -> dict[str, Any]:
        request = original_sign(*args, **kwargs)
        dropped = _drop(Captured(request["url"], "", request["headers"] or {}, None), name)
        return request | {"url": dropped.url, "headers": dropped.headers}

    instance.sign = sign_then_drop
    try:
        with pytest.raises(ccxt_async.AuthenticationError):
            await getattr(instance, spec.method)(spec.params(key))
    finally:
        await instance.close()


# --- the signature covers what the exchange says it covers -----------------------------------


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.exchange not in ("coinbase", "kraken")], ids=str
)
async def test_an_added_query_parameter_breaks_the_signature(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    # (Coinbase's v3 scheme signs the path without the query; Kraken signs the body.)
    key = fresh_sandbox.key(spec.exchange, "read_only")
    signed = await capture(fresh_sandbox, spec, key)
    joiner = "&" if "?" in signed.url else "?"
    tampered = Captured(signed.url + f"{joiner}limit=5", signed.method, signed.headers, None)
    _, body = await send(tampered)
    assert spec.bad_secret[1] in body


async def test_kraken_signature_covers_the_body(fresh_sandbox: SandboxServer) -> None:
    spec = BY_NAME["kraken"]
    signed = await capture(fresh_sandbox, spec, fresh_sandbox.key("kraken", "read_only"))
    assert signed.body is not None
    tampered = Captured(signed.url, "POST", signed.headers, signed.body + "&otp=123456")
    assert "EAPI:Invalid signature" in (await send(tampered))[1]


async def test_kraken_refuses_a_replayed_nonce(fresh_sandbox: SandboxServer) -> None:
    spec = BY_NAME["kraken"]
    key = fresh_sandbox.key("kraken", "read_only")
    instance = client("kraken", fresh_sandbox.exchange_urls["kraken"], key)
    instance.incrementing_nonce = lambda: 1_700_000_000_000  # the same nonce twice
    try:
        await instance.private_post_getapikeyinfo()
        with pytest.raises(ccxt_async.InvalidNonce, match="EAPI:Invalid nonce"):
            await instance.private_post_getapikeyinfo()
    finally:
        await instance.close()
    # A lower nonce is refused too; a forged request does not burn the key's nonce.
    signed = await capture(fresh_sandbox, spec, key, secret="QUJD" * 22)
    assert "EAPI:Invalid signature" in (await send(signed))[1]


# --- KuCoin key versions ----------------------------------------------------------------------


async def test_kucoin_passphrase_scheme_follows_the_key_version(
    fresh_sandbox: SandboxServer,
) -> None:
    spec = BY_NAME["kucoin"]
    for label in ("key_v1", "key_v2", "trade_whitelisted"):  # versions 1, 2 and 3
        key = fresh_sandbox.key("kucoin", label)
        signed = await capture(fresh_sandbox, spec, key)
        # ccxt sends version 2 with the HMAC-encrypted passphrase: fine for every version.
        assert signed.headers["KC-API-KEY-VERSION"] == "2"
        assert signed.headers["KC-API-PASSPHRASE"] != key.passphrase
        assert (await send(signed))[0] == 200, label
        # The plain passphrase (version 1 scheme) only works for a version 1 key.
        plain = dict(signed.headers, **{"KC-API-KEY-VERSION": "1"})
        plain["KC-API-PASSPHRASE"] = key.passphrase or ""
        status, body = await send(Captured(signed.url, "GET", plain, None))
        if key.key_version == 1:
            assert status == 200
        else:
            assert status == 401 and '"code":"400004"' in body


async def test_kucoin_shows_the_whitelist_masked(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("kucoin", "trade_whitelisted")
    instance = client("kucoin", fresh_sandbox.exchange_urls["kucoin"], key)
    try:
        answer = await instance.private_get_user_api_key()
    finally:
        await instance.close()
    assert answer["data"]["ipWhitelist"] == "203.**.10,198.**.7"
    assert answer["data"]["apiVersion"] == 3


# --- HTX: the signed host, and the two-step uid flow --------------------------------------


async def test_htx_signs_the_host_ccxt_believes_it_calls(fresh_sandbox: SandboxServer) -> None:
    spec = BY_NAME["htx"]
    key = fresh_sandbox.key("htx", "read_only")
    url = fresh_sandbox.exchange_urls["htx"]
    # URLs rewritten, hostname untouched: ccxt signs api.huobi.pro.
    default = client("htx", url, key)
    # hostname pointed at the sandbox itself: ccxt signs 127.0.0.1:port.
    pointed = client("htx", url, key)
    pointed.hostname = url.split("//")[1].split("/")[0]
    # A host HTX never answers to: refused.
    elsewhere = client("htx", url, key)
    elsewhere.hostname = "api.example.org"
    try:
        for instance in (default, pointed):
            await getattr(instance, spec.method)(spec.params(key))
        with pytest.raises(ccxt_async.AuthenticationError, match="1003"):
            await getattr(elsewhere, spec.method)(spec.params(key))
    finally:
        for instance in (default, pointed, elsewhere):
            await instance.close()


async def test_htx_inspection_takes_two_requests(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("htx", "no_whitelist")
    instance = client("htx", fresh_sandbox.exchange_urls["htx"], key)
    try:
        uid = (await instance.v2private_get_user_uid())["data"]
        answer = await instance.v2private_get_user_api_key({"uid": uid, "accessKey": key.api_key})
        # Someone else's uid: HTX answers 403 (ccxt: AuthenticationError).
        with pytest.raises(ccxt_async.AuthenticationError):
            await instance.v2private_get_user_api_key({"uid": uid + 1})
    finally:
        await instance.close()
    assert uid == key.uid
    assert answer["data"] == [
        {
            "accessKey": key.api_key,
            "status": "normal",
            "note": "no_whitelist",
            "permission": "readOnly,trade",
            "ipAddresses": "",
            "validDays": -1,
            "createTime": answer["data"][0]["createTime"],
            "updateTime": answer["data"][0]["updateTime"],
        }
    ]
    assert fresh_sandbox.request_count(key.api_key) == 3


async def test_htx_permission_refusal_is_the_code_ccxt_does_not_raise(
    fresh_sandbox: SandboxServer,
) -> None:
    key = fresh_sandbox.key("htx", "read_disabled")
    instance = client("htx", fresh_sandbox.exchange_urls["htx"], key)
    try:
        answer = await instance.v2private_get_user_uid()
    finally:
        await instance.close()
    assert answer == {"code": 1002, "message": "unauthorized"}


# --- Binance asymmetric keys ------------------------------------------------------------------


@pytest.mark.parametrize("label", ["rsa", "ed25519"])
async def test_binance_asymmetric_keys(fresh_sandbox: SandboxServer, label: str) -> None:
    spec = BY_NAME["binance"]
    key = fresh_sandbox.key("binance", label)
    impostor = new_key("binance", "other", key_type=label)  # same kind, other private key
    instance = client("binance", fresh_sandbox.exchange_urls["binance"], key)
    forged = client("binance", fresh_sandbox.exchange_urls["binance"], key, secret=impostor.secret)
    try:
        answer = await instance.sapi_get_account_apirestrictions()
        with pytest.raises(ccxt_async.AuthenticationError, match="-1022"):
            await forged.sapi_get_account_apirestrictions()
    finally:
        await instance.close()
        await forged.close()
    assert spec.rights(answer, key)[:2] == (True, False)


async def test_binance_recv_window_is_capped(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("binance", "read_only")
    instance = client("binance", fresh_sandbox.exchange_urls["binance"], key)
    instance.options["recvWindow"] = 70_000
    try:
        with pytest.raises(ccxt_async.InvalidNonce, match="-1021"):
            await instance.sapi_get_account_apirestrictions()
    finally:
        await instance.close()


async def test_binance_trading_authority_lapses_without_whitelist(
    fresh_sandbox: SandboxServer,
) -> None:
    answers = {}
    for label in ("no_whitelist", "trade_whitelisted"):
        key = fresh_sandbox.key("binance", label)
        instance = client("binance", fresh_sandbox.exchange_urls["binance"], key)
        try:
            answers[label] = await instance.sapi_get_account_apirestrictions()
        finally:
            await instance.close()
    assert answers["no_whitelist"]["ipRestrict"] is False
    assert "tradingAuthorityExpirationTime" in answers["no_whitelist"]
    assert answers["trade_whitelisted"]["ipRestrict"] is True
    assert "tradingAuthorityExpirationTime" not in answers["trade_whitelisted"]


# --- Coinbase CDP keys (JWT) --------------------------------------------------------------


@pytest.mark.parametrize("label", ["cdp", "cdp_ed25519"])
async def test_coinbase_cdp_jwt(fresh_sandbox: SandboxServer, label: str) -> None:
    key = fresh_sandbox.key("coinbase", label)
    url = fresh_sandbox.exchange_urls["coinbase"]
    instance = client("coinbase", url, key)
    late = client("coinbase", url, key)
    real = late.seconds
    late.seconds = lambda: real() - 600  # token expired ten minutes ago
    try:
        answer = await instance.v3_private_get_brokerage_key_permissions()
        with pytest.raises(ccxt_async.AuthenticationError):
            await late.v3_private_get_brokerage_key_permissions()
        # A token minted for another endpoint does not open this one.
        other = instance.create_auth_token(
            instance.seconds(),
            "GET",
            "https://api.coinbase.com/api/v3/brokerage/accounts",
            label == "cdp_ed25519",
        )
        status, _ = await send(
            Captured(
                url + "/api/v3/brokerage/key_permissions",
                "GET",
                {"Authorization": f"Bearer {other}"},
                None,
            )
        )
    finally:
        await instance.close()
        await late.close()
    assert answer["can_trade"] is True and answer["can_transfer"] is False
    assert status == 401


async def test_coinbase_cdp_key_name_with_hmac_headers_is_refused(
    fresh_sandbox: SandboxServer,
) -> None:
    spec = BY_NAME["coinbase"]
    cdp = fresh_sandbox.key("coinbase", "cdp")
    hmac_key = fresh_sandbox.key("coinbase", "read_only")
    signed = await capture(fresh_sandbox, spec, hmac_key)
    headers = dict(signed.headers, **{"CB-ACCESS-KEY": cdp.api_key})
    assert (await send(Captured(signed.url, "GET", headers, None)))[0] == 401


# --- Deribit token grant ------------------------------------------------------------------


async def test_deribit_public_auth_returns_the_key_scope(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("deribit", "withdraw_enabled")
    instance = client("deribit", fresh_sandbox.exchange_urls["deribit"])
    try:
        answer = await instance.public_get_auth(
            {
                "grant_type": "client_credentials",
                "client_id": key.api_key,
                "client_secret": key.secret,
            }
        )
        with pytest.raises(ccxt_async.AuthenticationError, match="13004"):
            await instance.public_get_auth(
                {
                    "grant_type": "client_credentials",
                    "client_id": key.api_key,
                    "client_secret": key.secret[::-1],
                }
            )
        refused = fresh_sandbox.key("deribit", "ip_refused")
        with pytest.raises(ccxt_async.PermissionDenied, match="13021"):
            await instance.public_get_auth(
                {
                    "grant_type": "client_credentials",
                    "client_id": refused.api_key,
                    "client_secret": refused.secret,
                }
            )
    finally:
        await instance.close()
    scope = answer["result"]["scope"].split()
    assert "trade:read_write" in scope and "wallet:read_write" in scope
    assert fresh_sandbox.request_count(key.api_key) == 2


async def test_deribit_client_signature_grant(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("deribit", "read_only")
    instance = client("deribit", fresh_sandbox.exchange_urls["deribit"])
    stamp, nonce = str(instance.milliseconds()), "abc123"
    signature = instance.hmac(f"{stamp}\n{nonce}\n".encode(), key.secret.encode())
    try:
        answer = await instance.public_get_auth(
            {
                "grant_type": "client_signature",
                "client_id": key.api_key,
                "timestamp": stamp,
                "nonce": nonce,
                "data": "",
                "signature": signature,
            }
        )
    finally:
        await instance.close()
    assert "trade:read" in answer["result"]["scope"].split()


# --- no secret in any refusal, nor in the logs ---------------------------------------------

CANARY_SECRET = "CANARY5ECRET0000000000000000000"
CANARY_PASSPHRASE = "CANARYPASSPHRASE0000"


@pytest.mark.parametrize("spec", SPECS, ids=str)
async def test_refusals_and_logs_never_hold_a_secret(
    fresh_sandbox: SandboxServer, spec: Spec, caplog: pytest.LogCaptureFixture
) -> None:
    import base64

    secret = CANARY_SECRET if spec.exchange != "kraken" else base64.b64encode(b"C" * 64).decode()
    template = fresh_sandbox.key(spec.exchange, "ip_refused")
    canary = SandboxKey(
        **{
            **template.__dict__,
            "label": "canary",
            "api_key": template.api_key[::-1],
            "secret": secret,
            "passphrase": CANARY_PASSPHRASE if template.passphrase else None,
        }
    )
    fresh_sandbox.add_key(canary)
    caplog.set_level(logging.DEBUG)
    bodies = []
    for overrides in ({}, {"secret": "QUJD" * 22}, {"password": "wrong-passphrase"}):
        signed = await capture(fresh_sandbox, spec, canary, **overrides)
        bodies.append((await send(signed))[1])
    fresh_sandbox.inject(spec.exchange, "rate_limited")
    bodies.append((await send(await capture(fresh_sandbox, spec, canary)))[1])
    text = json.dumps(bodies) + caplog.text
    assert secret not in text
    assert CANARY_PASSPHRASE not in text
