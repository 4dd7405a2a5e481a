"""Adapters' normalization and error mapping on the documented answers.

Every canned body below is the example (or error text) quoted in
docs/facts/exchanges.md for that exchange, which cites the official docs.
The exceptions are the ccxt classes that reference records ccxt raising for each body
(verified there against ccxt 4.5.90), built the way ccxt builds them: "<id> <body>".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import pytest

from broker.exchanges import (
    binance,
    bingx,
    bitget,
    bybit,
    coinbase,
    deribit,
    gate,
    htx,
    kraken,
    kucoin,
    okx,
)
from broker.exchanges.base import Credentials, InspectionFailed
from broker.exchanges.registry import ADAPTERS
from broker.reasons import Inspection, Permissions, ReasonCode


def test_registry_has_every_exchange_once() -> None:
    assert set(ADAPTERS) == {
        "binance", "okx", "bybit", "kucoin", "gate", "bitget",
        "htx", "bingx", "kraken", "mexc", "coinbase", "deribit",
    }  # fmt: skip
    assert {a for a, ad in ADAPTERS.items() if ad.requires_passphrase} == {
        "okx",
        "kucoin",
        "bitget",
    }
    assert ADAPTERS["htx"].requests_per_check == 2


# --- normalization on documented examples -----------------------------------------------------


def test_binance_docs_example() -> None:
    answer = {
        "ipRestrict": False, "createTime": 1698645219000, "enableReading": True,
        "enableWithdrawals": False, "enableInternalTransfer": False, "enableMargin": False,
        "enableFutures": False, "permitsUniversalTransfer": False,
        "enableVanillaOptions": False, "enableFixApiTrade": False, "enableFixReadOnly": True,
        "enableSpotAndMarginTrading": False, "enablePortfolioMarginTrading": True,
    }  # fmt: skip
    insp = binance.parse(answer)
    # portfolio-margin trading is derivatives trading
    assert insp.permissions == Permissions(read=True, futures=True)
    assert insp.ip_restricted is False
    assert insp.ip_whitelist is None  # never readable since 2021-11-17
    assert insp.ip_whitelist_verified is False


def test_binance_trading_authority_expiry() -> None:
    answer = {"enableReading": True, "enableSpotAndMarginTrading": True, "ipRestrict": False,
              "tradingAuthorityExpirationTime": 1700000000000}  # fmt: skip
    insp = binance.parse(answer)
    assert insp.permissions.spot_trade
    assert insp.expires_at == datetime.fromtimestamp(1700000000, UTC)


def test_okx_docs_example() -> None:
    answer = {"code": "0", "msg": "", "data": [{"uid": "44705892343619584", "acctLv": "2",
              "label": "v5 test", "ip": "", "perm": "read_only,withdraw,trade"}]}  # fmt: skip
    insp = okx.parse(answer)
    assert insp.permissions == Permissions(
        read=True, spot_trade=True, margin=True, futures=True, withdraw=True
    )
    assert insp.ip_restricted is False
    assert insp.ip_whitelist == []


def test_okx_spot_mode_trade_key_has_no_derivatives() -> None:
    answer = {"code": "0", "data": [{"acctLv": "1", "ip": "117.37.203.58,117.37.203.57",
              "perm": "read_only,trade"}]}  # fmt: skip
    insp = okx.parse(answer)
    assert insp.permissions == Permissions(read=True, spot_trade=True)
    assert insp.ip_whitelist == ["117.37.203.58", "117.37.203.57"]


def test_bybit_docs_example() -> None:
    answer = {"retCode": 0, "retMsg": "", "result": {"id": "13770661", "readOnly": 0,
              "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                              "Wallet": ["AccountTransfer", "SubMemberTransfer"],
                              "Options": ["OptionsTrade"], "Derivatives": [], "CopyTrading": []},
              "ips": ["*"], "type": 1, "deadlineDay": 66, "expiredAt": "2023-12-22T07:20:25Z",
              "createdAt": "2022-10-16T02:24:40Z"}}  # fmt: skip
    insp = bybit.parse(answer)
    assert insp.permissions == Permissions(read=True, spot_trade=True, futures=True, transfer=True)
    assert insp.ip_restricted is False and insp.ip_whitelist == []
    assert insp.expires_at == datetime(2023, 12, 22, 7, 20, 25, tzinfo=UTC)


def test_bybit_read_only_flag_overrides_listed_rights() -> None:
    answer = {"retCode": 0, "result": {"readOnly": 1, "ips": ["203.0.113.10"],
              "permissions": {"Spot": ["SpotTrade"], "Wallet": ["Withdraw"]}}}  # fmt: skip
    insp = bybit.parse(answer)
    assert insp.permissions == Permissions(read=True)
    assert insp.ip_whitelist == ["203.0.113.10"]


def test_kucoin_sdk_fixture() -> None:
    answer = {"code": "200000", "data": {"remark": "account1",
              "apiKey": "6705f5c311545b000157d3eb", "apiVersion": 3,
              "permission": "General,Futures,Spot,Earn,InnerTransfer,Transfer,Margin",
              "ipWhitelist": "203.**.154,103.**.34", "createdAt": 1728443843000,
              "uid": 165111215, "isMaster": True}}  # fmt: skip
    insp = kucoin.parse(answer)
    assert insp.permissions == Permissions(
        read=True, spot_trade=True, margin=True, futures=True, withdraw=True, transfer=True
    )
    assert insp.ip_whitelist == ["203.**.154", "103.**.34"]  # kept masked, as reported


def test_gate_docs_example_matches_masked_key() -> None:
    answer = [{"state": 1, "mode": 1, "name": "test1", "user_id": 1,
               "perms": [{"name": "account", "read_only": False},
                         {"name": "spot", "read_only": False}],
               "ip_whitelist": [], "key": "c5dcfbf1f3a7*****"},
              {"state": 1, "perms": [{"name": "wallet", "read_only": False}],
               "ip_whitelist": ["1.2.3.4"], "key": "ffff0000aaaa*****"}]  # fmt: skip
    insp = gate.parse(answer, "c5dcfbf1f3a7e0aa11")
    assert insp.permissions == Permissions(read=True, spot_trade=True)
    assert insp.ip_restricted is False
    other = gate.parse(answer[1], "ffff0000aaaa0000")  # SDK shape: a single object
    assert other.permissions.withdraw and other.permissions.transfer
    assert other.ip_whitelist == ["1.2.3.4"]


def test_gate_ambiguous_or_missing_key_is_unverifiable() -> None:
    entry = {"state": 1, "perms": [], "ip_whitelist": [], "key": "c5dc*****"}
    for answer, key in (([entry, dict(entry)], "c5dc0001"), ([entry], "zzzz")):
        with pytest.raises(InspectionFailed) as caught:
            gate.parse(answer, key)
        assert caught.value.reason.code is ReasonCode.UNVERIFIABLE


def test_gate_locked_key_is_refused() -> None:
    with pytest.raises(InspectionFailed) as caught:
        gate.parse([{"state": 2, "perms": [], "key": "abcd*****"}], "abcd1234")
    assert caught.value.reason.code is ReasonCode.INVALID_CREDENTIALS


def test_bitget_authority_codes() -> None:
    answer = {"code": "00000", "msg": "success", "data": {"userId": "1", "ips": "127.0.0.1",
              "authorities": ["stor", "stow", "coow", "wtow", "wwow"]}}  # fmt: skip
    insp = bitget.parse(answer)
    assert insp.permissions == Permissions(
        read=True, spot_trade=True, futures=True, withdraw=True, transfer=True
    )
    assert insp.ip_whitelist == ["127.0.0.1"]
    legacy = bitget.parse({"code": "00000", "data": {"ips": "", "authorities": ["readonly"]}})
    assert legacy.permissions == Permissions(read=True) and legacy.ip_restricted is False


def test_htx_docs_example() -> None:
    key = "4ba5cdf2-aaaa"
    body = {"code": 200, "message": "success", "data": [{"accessKey": key, "status": "normal",
            "note": "62924133", "permission": "readOnly,trade", "ipAddresses": "1.1.1.1,1.1.1.2",
            "validDays": -1, "createTime": 1591348751000}]}  # fmt: skip
    insp = htx.parse(body, key)
    assert insp.permissions == Permissions(read=True, spot_trade=True)
    assert insp.ip_whitelist == ["1.1.1.1", "1.1.1.2"]
    assert insp.expires_at is None  # -1 = permanently valid
    now = datetime(2026, 1, 1, tzinfo=UTC)
    body["data"][0]["validDays"] = 10
    assert htx.parse(body, key, now=now).expires_at == now + timedelta(days=10)


def test_bingx_permission_numbers() -> None:
    answer = {"code": 0, "msg": "", "data": {"apiKey": "k", "permissions": [1, 2, 3, 4, 5, 7],
              "ipAddresses": ["1.2.3.4"], "note": ""}}  # fmt: skip
    insp = bingx.parse(answer)
    assert insp.permissions == Permissions(
        read=True, spot_trade=True, futures=True, withdraw=True, transfer=True
    )
    read_only = {"code": 0, "data": {"permissions": [2], "ipAddresses": []}}
    assert bingx.parse(read_only).permissions == Permissions(read=True)


def test_kraken_docs_example_and_fast_api_names() -> None:
    answer = {"error": [], "result": {"apiKeyName": "my-api-key", "permissions": ["query-funds",
              "withdraw-funds", "query-open-trades", "modify-trades"], "validUntil": "0",
              "ipAllowlist": []}}  # fmt: skip
    insp = kraken.parse(answer)
    assert insp.permissions == Permissions(read=True, spot_trade=True, withdraw=True)
    assert insp.expires_at is None and insp.ip_restricted is False
    fast = {"error": [], "result": {"permissions": ["funds_query", "trades_query_open"],
            "validUntil": "1900000000", "ipAllowlist": ["203.0.113.10"]}}  # fmt: skip
    insp = kraken.parse(fast)
    assert insp.permissions == Permissions(read=True)
    assert insp.expires_at == datetime.fromtimestamp(1900000000, UTC)


def test_coinbase_key_permissions() -> None:
    insp = coinbase.parse({"can_view": True, "can_trade": True, "can_transfer": False,
                           "portfolio_uuid": "x", "portfolio_type": "DEFAULT"})  # fmt: skip
    assert insp.permissions == Permissions(read=True, spot_trade=True)
    assert insp.ip_restricted is None and insp.ip_whitelist is None


def test_deribit_list_api_keys_example() -> None:
    answer = {"jsonrpc": "2.0", "id": 2553, "result": [{"timestamp": 1560236287708,
              "max_scope": "account:read_write block_trade:read_write trade:read_write "
              "wallet:read_write", "id": 2, "enabled": True, "default": True,
              "client_secret": "s", "client_id": "aD-KFx-H", "name": "", "enabled_features": []},
              {"max_scope": "account:read trade:none wallet:none", "client_id": "other",
               "ip_whitelist": ["203.0.113.10"], "enabled": True}]}  # fmt: skip
    insp = deribit.parse(answer, "aD-KFx-H")
    assert insp.permissions == Permissions(
        read=True, spot_trade=True, futures=True, withdraw=True, transfer=True
    )
    other = deribit.parse(answer, "other")
    assert other.permissions == Permissions(read=True)
    assert other.ip_whitelist == ["203.0.113.10"]


@pytest.mark.parametrize(
    ("parse", "field", "wrap"),
    [
        (htx.parse, "accessKey", lambda keys: {"code": 200, "data": keys}),
        (deribit.parse, "client_id", lambda keys: {"jsonrpc": "2.0", "result": keys}),
    ],
    ids=["htx", "deribit"],
)
def test_listed_keys_need_exactly_one_own_entry(
    parse: Callable[[Any, str], Inspection], field: str, wrap: Callable[[Any], Any]
) -> None:
    """HTX and Deribit list keys (docs/facts/exchanges.md): ours missing or listed twice
    is unverifiable, never another key's rights; a listing that is not a list is a shape
    error."""
    mine = {field: "mine", "permission": "readOnly", "max_scope": "account:read"}
    for keys in ([{field: "other"}], [mine, dict(mine)], ["mine"]):
        with pytest.raises(InspectionFailed) as caught:
            parse(wrap(keys), "mine")
        assert caught.value.reason.code is ReasonCode.UNVERIFIABLE
    with pytest.raises(InspectionFailed) as caught:
        parse(wrap({field: "mine"}), "mine")
    assert caught.value.reason.code is ReasonCode.EXCHANGE_UNAVAILABLE
    assert parse(wrap([{field: "other"}, mine]), "mine").permissions.read


def test_deribit_auth_scope() -> None:
    """public/auth result `scope` (docs/facts/exchanges.md, Deribit: granted scope)."""
    answer = {"jsonrpc": "2.0", "result": {"access_token": "t", "expires_in": 900,
              "scope": "connection mainaccount account:none trade:read_write wallet:none",
              "token_type": "bearer"}}  # fmt: skip
    insp = deribit.parse_auth(answer)
    assert insp.permissions == Permissions(read=False, spot_trade=True, futures=True)
    assert insp.ip_restricted is None and insp.ip_whitelist is None


def test_shape_errors_are_unavailable_not_crashes() -> None:
    for parse, bad in (
        (okx.parse, {"code": "0", "data": []}),
        (bybit.parse, {"retCode": 0, "result": None}),
        (kucoin.parse, ["not", "a", "dict"]),
        (bingx.parse, {"code": 0, "data": {"permissions": "1,2"}}),
        (kraken.parse, {"error": [], "result": {"validUntil": "soon"}}),
    ):
        with pytest.raises(InspectionFailed) as caught:
            parse(bad)
        assert caught.value.reason.code is ReasonCode.EXCHANGE_UNAVAILABLE


# --- error mapping: documented bodies, the class ccxt raises for them --------------------------


def ccxt_error(cls: type[Exception], exchange: str, body: object) -> Exception:
    return cls(f"{exchange} {json.dumps(body)}")


def _ec_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


EC_PEM = _ec_pem()  # a private key Binance does not take


def _ed25519_pem() -> str:
    from keybroker_dev.sandbox.keys import ed25519_secret

    return ed25519_secret()


ED25519_PEM = _ed25519_pem()  # a private key Bybit does not take

ERROR_CASES = [
    # (exchange, ccxt class, body, expected reason)
    ("binance", ccxt.AuthenticationError,
     {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
     "invalid_credentials"),
    ("binance", ccxt.AuthenticationError,
     {"code": -1022, "msg": "Signature for this request is not valid."}, "invalid_credentials"),
    ("binance", ccxt.InvalidNonce, {"code": -1021, "msg": "Timestamp..."}, "exchange_unavailable"),
    ("binance", ccxt.DDoSProtection, None, "rate_limited"),
    ("okx", ccxt.PermissionDenied, {"code": "50110", "msg": "Your IP 1.2.3.4 is not included"},
     "ip_not_allowed"),
    ("okx", ccxt.ExchangeError, {"code": "50119", "msg": "API key doesn't exist"},
     "invalid_credentials"),
    ("okx", ccxt.ExchangeError, {"code": "50120", "msg": "no permission"}, "read_disabled"),
    ("okx", ccxt.AuthenticationError, {"code": "50105", "msg": "passphrase incorrect"},
     "invalid_credentials"),
    ("okx", ccxt.ExchangeNotAvailable, None, "exchange_unavailable"),  # non-JSON 429
    ("bybit", ccxt.PermissionDenied, {"retCode": 10010, "retMsg": "Unmatched IP"},
     "ip_not_allowed"),
    ("bybit", ccxt.AuthenticationError, {"retCode": 33004, "retMsg": "expired"}, "key_expired"),
    ("bybit", ccxt.RateLimitExceeded, {"retCode": 10006, "retMsg": "Too many visits"},
     "rate_limited"),
    ("kucoin", ccxt.AuthenticationError, {"code": "400006", "msg": "not in the API whitelist"},
     "ip_not_allowed"),
    ("kucoin", ccxt.AuthenticationError, {"code": "400004", "msg": "KC-API-PASSPHRASE error"},
     "invalid_credentials"),
    ("gate", ccxt.AuthenticationError, {"label": "IP_FORBIDDEN", "message": "ip"},
     "ip_not_allowed"),
    ("gate", ccxt.AuthenticationError, {"label": "REQUEST_EXPIRED", "message": "gap"},
     "exchange_unavailable"),
    ("gate", ccxt.PermissionDenied, {"label": "FORBIDDEN", "message": "no account permission"},
     "unverifiable"),
    ("bitget", ccxt.PermissionDenied, {"code": "40018", "msg": "Invalid IP"}, "ip_not_allowed"),
    ("bitget", ccxt.AuthenticationError, {"code": "40012", "msg": "apikey/password is incorrect"},
     "invalid_credentials"),
    ("htx", ccxt.PermissionDenied, {"status": "error", "err-code": "api-not-support-temp-addr"},
     "ip_not_allowed"),
    ("htx", ccxt.AuthenticationError, {"status": "error", "err-code": "api-signature-not-valid"},
     "invalid_credentials"),
    ("bingx", ccxt.BadSymbol, {"code": 100421, "msg": "timestamp mismatch"},
     "exchange_unavailable"),
    ("bingx", ccxt.OperationFailed, {"code": 100410, "msg": "rate limited"}, "rate_limited"),
    ("bingx", ccxt.PermissionDenied, {"code": 100419, "msg": "IP does not match"},
     "ip_not_allowed"),
    ("kraken", ccxt.ExchangeError, {"error": ["EAPI:Invalid signature"]}, "invalid_credentials"),
    ("kraken", ccxt.DDoSProtection, {"error": ["EAPI:Rate limit exceeded"]}, "rate_limited"),
    ("kraken", ccxt.PermissionDenied, {"error": ["EGeneral:Permission denied"]}, "ip_not_allowed"),
    ("htx", ccxt.AuthenticationError, {"status": "error", "err-code": "api-signature-not-valid",
     "err-msg": "Signature not valid: Incorrect IP address"}, "ip_not_allowed"),
    ("mexc", ccxt.BadRequest, {"code": 700006, "msg": "IP non white list"}, "ip_not_allowed"),
    ("coinbase", ccxt.ExchangeError, {"error": "RESOURCE_EXHAUSTED"}, "rate_limited"),
    ("coinbase", ccxt.AuthenticationError, None, "invalid_credentials"),  # plain 401
    ("deribit", ccxt.AuthenticationError, {"error": {"code": 13009, "message": "unauthorized"}},
     "invalid_credentials"),
    ("deribit", ccxt.PermissionDenied, {"error": {"code": 13021, "message": "forbidden"}},
     "invalid_credentials"),
    ("deribit", ccxt.DDoSProtection, {"error": {"code": 10028}}, "rate_limited"),
    ("okx", ccxt.RequestTimeout, None, "exchange_unavailable"),
    ("okx", ccxt.NetworkError, None, "exchange_unavailable"),
    ("okx", ccxt.ExchangeError, {"code": "59999", "msg": "unknown"}, "exchange_unavailable"),
    ("okx", ValueError, None, "exchange_unavailable"),
]  # fmt: skip


@pytest.mark.parametrize(("exchange", "cls", "body", "expected"), ERROR_CASES)
def test_error_mapping(exchange: str, cls: type[Exception], body: object, expected: str) -> None:
    exc = ccxt_error(cls, exchange, body) if body is not None else cls(f"{exchange} GET url")
    reason = ADAPTERS[exchange].map_error(exc)
    assert reason.code.value == expected
    assert reason.severity.value == "error"


def test_binance_2015_says_key_ip_or_permission() -> None:
    exc = ccxt_error(ccxt.AuthenticationError, "binance", {"code": -2015, "msg": "x"})
    message = ADAPTERS["binance"].map_error(exc).message
    assert "key" in message and "IP" in message and "permission" in message


def test_error_messages_never_echo_exchange_text() -> None:
    canary = "CANARY-API-KEY-0123456789"
    url = f"http://x/v2/user/uid?AccessKeyId={canary}"
    exc = ccxt.AuthenticationError(f'htx GET {url} {{"code": 1003}}')
    for adapter in ADAPTERS.values():
        assert canary not in adapter.map_error(exc).message


# --- prechecks: decided without a request ----------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "credentials", "expected"),
    [
        ("okx", Credentials("k", "s"), "invalid_credentials"),  # passphrase required
        # Binance RSA/Ed25519 keys ccxt cannot sign with (truncated, or not RSA/Ed25519)
        ("binance", Credentials("k", "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY"),
         "invalid_credentials"),
        ("binance", Credentials("k", EC_PEM), "invalid_credentials"),
        # Bybit RSA keys ccxt cannot sign with (truncated, or not RSA)
        ("bybit", Credentials("k", "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY"),
         "invalid_credentials"),
        ("bybit", Credentials("k", ED25519_PEM), "invalid_credentials"),
        # exchanges whose ccxt signing takes no private key
        ("gate", Credentials("k", ED25519_PEM), "non_hmac_key"),
        # CDP keys whose private key cannot be signed with (truncated, wrong curve, ...)
        ("coinbase", Credentials("organizations/1/apiKeys/2", "-----BEGIN EC PRIVATE KEY-----"),
         "invalid_credentials"),
        ("coinbase", Credentials("k", "A" * 84 + "=="), "invalid_credentials"),  # 63 bytes
        ("coinbase", Credentials("-----BEGIN PUBLIC KEY-----", "A" * 86 + "=="),
         "invalid_credentials"),  # the public key where the key name belongs
        ("kraken", Credentials("k", "not base64!"), "invalid_credentials"),
    ],
)  # fmt: skip
def test_prechecks(exchange: str, credentials: Credentials, expected: str) -> None:
    reason = ADAPTERS[exchange].precheck(credentials)
    assert reason is not None and reason.code.value == expected


def test_prechecks_pass_binance_and_bybit_asymmetric_keys() -> None:
    """Issue 13: Binance RSA/Ed25519 and Bybit RSA keys were refused as non_hmac_key before
    any request (fails on the code before: base.precheck refused every PEM secret)."""
    from keybroker_dev.sandbox.keys import ed25519_secret, rsa_secret

    for secret in (rsa_secret(), ed25519_secret()):
        assert ADAPTERS["binance"].precheck(Credentials("k", secret)) is None
    assert ADAPTERS["bybit"].precheck(Credentials("k", rsa_secret())) is None


def test_binance_pem_that_ccxt_would_sign_with_the_wrong_algorithm() -> None:
    """ccxt picks RSA or Ed25519 by the PEM's length: an Ed25519 key padded past 120
    characters would be signed as RSA and fail at the exchange; refused up front, and the
    message shows no part of the secret."""
    from keybroker_dev.sandbox.keys import ed25519_secret

    padded = ed25519_secret() + "\n" * 30
    reason = ADAPTERS["binance"].precheck(Credentials("k", padded))
    assert reason is not None and reason.code.value == "invalid_credentials"
    assert "wrong algorithm" in reason.message and "PRIVATE" not in reason.message


def test_prechecks_pass_cdp_keys_ccxt_can_sign_with() -> None:
    """Issue 11: CDP keys were refused as non_hmac_key before any request."""
    from keybroker_dev.sandbox.keys import cdp_ed25519_secret, cdp_es256_secret, cdp_key_name

    for secret in (cdp_es256_secret(), cdp_ed25519_secret()):
        assert ADAPTERS["coinbase"].precheck(Credentials(cdp_key_name(), secret)) is None


def test_prechecks_pass_good_hmac_keys() -> None:
    assert ADAPTERS["coinbase"].precheck(Credentials("abc", "0123456789abcdef" * 2)) is None
    assert ADAPTERS["kraken"].precheck(Credentials("abc", "c2VjcmV0")) is None
    assert ADAPTERS["okx"].precheck(Credentials("abc", "s", "pass")) is None


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("APIKEY-CANARY-123456", "SECRET-CANARY", "PASSPHRASE-CANARY")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "SECRET-CANARY" not in text
        assert "PASSPHRASE-CANARY" not in text
        assert "APIKEY-CANARY-123456" not in text
    assert "APIK...3456" in repr(creds)
