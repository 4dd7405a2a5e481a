"""Per-exchange expectations for the sandbox tests, each taken from docs/facts/exchanges.md
(the "Errors" and "ccxt" items of each exchange's section): which ccxt implicit method
reads the key, how the answer shows trade/withdraw rights and the IP whitelist, and which
ccxt exception class and exchange code each refusal must produce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from keybroker_dev.sandbox import SandboxKey

Outcome = tuple[type[Exception], str]  # ccxt exception class, code/text in its message
Rights = tuple[bool, bool, Any]  # (can trade, can withdraw, ip facts)


def _no_params(key: SandboxKey) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Spec:
    exchange: str
    method: str
    path: str  # the endpoint as the exchange documents it (for raw HTTP tests)
    rights: Callable[[Any, SandboxKey], Rights]
    bad_secret: Outcome
    unknown_key: Outcome
    ip_refused: Outcome
    expired: Outcome
    stale: Outcome | None
    rate_limited: Outcome
    unavailable: type[Exception]
    bad_passphrase: Outcome | None = None
    params: Callable[[SandboxKey], dict[str, Any]] = _no_params
    http_method: str = "GET"

    def __str__(self) -> str:
        return self.exchange


def _gate_rights(answer: Any, key: SandboxKey) -> Rights:
    mine = [k for k in answer if key.api_key.startswith(k["key"].rstrip("*"))]
    assert len(mine) == 1, "main_keys must list the caller's key once, masked"
    perms = {p["name"]: p["read_only"] for p in mine[0]["perms"]}
    return perms.get("spot") is False, perms.get("wallet") is False, mine[0]["ip_whitelist"]


def _deribit_rights(answer: Any, key: SandboxKey) -> Rights:
    mine = [k for k in answer["result"] if k["client_id"] == key.api_key]
    assert len(mine) == 1
    scope = mine[0]["max_scope"].split()
    return "trade:read_write" in scope, "wallet:read_write" in scope, mine[0]["ip_whitelist"]


SPECS: tuple[Spec, ...] = (
    Spec(
        "binance",
        "sapi_get_account_apirestrictions",
        "/sapi/v1/account/apiRestrictions",
        lambda a, k: (a["enableSpotAndMarginTrading"], a["enableWithdrawals"], a["ipRestrict"]),
        bad_secret=(ccxt.AuthenticationError, "-1022"),
        unknown_key=(ccxt.AuthenticationError, "-2015"),
        ip_refused=(ccxt.AuthenticationError, "-2015"),
        expired=(ccxt.AuthenticationError, "-2015"),
        stale=(ccxt.InvalidNonce, "-1021"),
        rate_limited=(ccxt.DDoSProtection, "-1003"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "okx",
        "private_get_account_config",
        "/api/v5/account/config",
        lambda a, k: (
            "trade" in a["data"][0]["perm"].split(","),
            "withdraw" in a["data"][0]["perm"].split(","),
            a["data"][0]["ip"],
        ),
        bad_secret=(ccxt.AuthenticationError, "50113"),
        unknown_key=(ccxt.AuthenticationError, "50111"),
        ip_refused=(ccxt.PermissionDenied, "50110"),
        expired=(ccxt.AuthenticationError, "50111"),
        stale=(ccxt.InvalidNonce, "50102"),
        rate_limited=(ccxt.RateLimitExceeded, "50011"),
        unavailable=ccxt.OnMaintenance,
        bad_passphrase=(ccxt.AuthenticationError, "50105"),
    ),
    Spec(
        "bybit",
        "private_get_v5_user_query_api",
        "/v5/user/query-api",
        lambda a, k: (
            "SpotTrade" in a["result"]["permissions"]["Spot"],
            "Withdraw" in a["result"]["permissions"]["Wallet"],
            a["result"]["ips"],
        ),
        bad_secret=(ccxt.AuthenticationError, "10004"),
        unknown_key=(ccxt.AuthenticationError, "10003"),
        ip_refused=(ccxt.PermissionDenied, "10010"),
        expired=(ccxt.AuthenticationError, "33004"),
        stale=(ccxt.InvalidNonce, "10002"),
        rate_limited=(ccxt.RateLimitExceeded, "10006"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "kucoin",
        "private_get_user_api_key",
        "/api/v1/user/api-key",
        lambda a, k: (
            "Spot" in a["data"]["permission"].split(","),
            "Transfer" in a["data"]["permission"].split(","),
            a["data"]["ipWhitelist"],
        ),
        bad_secret=(ccxt.AuthenticationError, "400005"),
        unknown_key=(ccxt.AuthenticationError, "400003"),
        ip_refused=(ccxt.AuthenticationError, "400006"),
        expired=(ccxt.AuthenticationError, "400003"),
        stale=(ccxt.InvalidNonce, "400002"),
        rate_limited=(ccxt.RateLimitExceeded, "429000"),
        unavailable=ccxt.ExchangeNotAvailable,
        bad_passphrase=(ccxt.AuthenticationError, "400004"),
    ),
    Spec(
        "gate",
        "private_account_get_main_keys",
        "/api/v4/account/main_keys",
        _gate_rights,
        bad_secret=(ccxt.AuthenticationError, "INVALID_SIGNATURE"),
        unknown_key=(ccxt.AuthenticationError, "INVALID_KEY"),
        ip_refused=(ccxt.AuthenticationError, "IP_FORBIDDEN"),
        expired=(ccxt.AuthenticationError, "INVALID_KEY"),
        stale=(ccxt.AuthenticationError, "REQUEST_EXPIRED"),
        rate_limited=(ccxt.RateLimitExceeded, "TOO_MANY_REQUESTS"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "bitget",
        "private_spot_get_v2_spot_account_info",
        "/api/v2/spot/account/info",
        lambda a, k: (
            "stow" in a["data"]["authorities"],
            "wwow" in a["data"]["authorities"],
            a["data"]["ips"],
        ),
        bad_secret=(ccxt.AuthenticationError, "40009"),
        unknown_key=(ccxt.AuthenticationError, "40006"),
        ip_refused=(ccxt.PermissionDenied, "40018"),
        expired=(ccxt.AuthenticationError, "40037"),
        stale=(ccxt.InvalidNonce, "40008"),
        rate_limited=(ccxt.DDoSProtection, "429"),
        unavailable=ccxt.ExchangeNotAvailable,
        bad_passphrase=(ccxt.AuthenticationError, "40012"),
    ),
    Spec(
        "htx",
        "v2private_get_user_api_key",
        "/v2/user/api-key",
        lambda a, k: (
            "trade" in a["data"][0]["permission"].split(","),
            "withdraw" in a["data"][0]["permission"].split(","),
            a["data"][0]["ipAddresses"],
        ),
        bad_secret=(ccxt.AuthenticationError, "1003"),
        unknown_key=(ccxt.AuthenticationError, "Incorrect Access key"),
        ip_refused=(ccxt.AuthenticationError, "Incorrect IP address"),
        expired=(ccxt.AuthenticationError, "Incorrect Access key"),
        stale=(ccxt.AuthenticationError, "api-signature-not-valid"),
        rate_limited=(ccxt.RateLimitExceeded, "base-request-exceed-frequency-limit"),
        unavailable=ccxt.OnMaintenance,
        params=lambda key: {"uid": key.uid, "accessKey": key.api_key},
    ),
    Spec(
        "bingx",
        "account_v1_private_get_account_apipermissions",
        "/openApi/v1/account/apiPermissions",
        lambda a, k: (
            1 in a["data"]["permissions"],
            5 in a["data"]["permissions"],
            a["data"]["ipAddresses"],
        ),
        bad_secret=(ccxt.AuthenticationError, "100001"),
        unknown_key=(ccxt.AuthenticationError, "100413"),
        ip_refused=(ccxt.PermissionDenied, "100419"),
        expired=(ccxt.AuthenticationError, "100413"),
        stale=(ccxt.BadSymbol, "100421"),  # ccxt's misfile, per exchanges.md
        rate_limited=(ccxt.OperationFailed, "100410"),  # ditto
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "kraken",
        "private_post_getapikeyinfo",
        "/0/private/GetApiKeyInfo",
        lambda a, k: (
            "modify-trades" in a["result"]["permissions"],
            "withdraw-funds" in a["result"]["permissions"],
            a["result"]["ipAllowlist"],
        ),
        bad_secret=(ccxt.ExchangeError, "EAPI:Invalid signature"),  # unmapped in ccxt
        unknown_key=(ccxt.AuthenticationError, "EAPI:Invalid key"),
        ip_refused=(ccxt.PermissionDenied, "EGeneral:Permission denied"),
        expired=(ccxt.AuthenticationError, "EAPI:Invalid key"),
        stale=None,  # Kraken has nonces, not timestamps: see the replay test
        rate_limited=(ccxt.DDoSProtection, "EAPI:Rate limit exceeded"),
        unavailable=ccxt.ExchangeNotAvailable,
        http_method="POST",
    ),
    Spec(
        "mexc",
        "spot_private_get_account",
        "/api/v3/account",
        lambda a, k: (a["canTrade"], a["canWithdraw"], None),
        bad_secret=(ccxt.AuthenticationError, "700002"),
        unknown_key=(ccxt.BadRequest, "10072"),  # ccxt's misfile, per exchanges.md
        ip_refused=(ccxt.BadRequest, "700006"),  # ditto
        expired=(ccxt.BadRequest, "10072"),
        stale=(ccxt.InvalidNonce, "700003"),
        rate_limited=(ccxt.RateLimitExceeded, "429"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "coinbase",
        "v3_private_get_brokerage_key_permissions",
        "/api/v3/brokerage/key_permissions",
        lambda a, k: (a["can_trade"], a["can_transfer"], None),
        bad_secret=(ccxt.AuthenticationError, "401"),
        unknown_key=(ccxt.AuthenticationError, "401"),
        ip_refused=(ccxt.AuthenticationError, "401"),
        expired=(ccxt.AuthenticationError, "401"),
        stale=(ccxt.AuthenticationError, "request timestamp expired"),
        rate_limited=(ccxt.RateLimitExceeded, "429"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
    Spec(
        "deribit",
        "private_get_list_api_keys",
        "/api/v2/private/list_api_keys",
        _deribit_rights,
        bad_secret=(ccxt.AuthenticationError, "13009"),
        unknown_key=(ccxt.AuthenticationError, "13004"),
        ip_refused=(ccxt.PermissionDenied, "13021"),
        expired=(ccxt.AuthenticationError, "13004"),
        stale=(ccxt.AuthenticationError, "13009"),
        rate_limited=(ccxt.DDoSProtection, "10028"),
        unavailable=ccxt.ExchangeNotAvailable,
    ),
)

BY_NAME = {spec.exchange: spec for spec in SPECS}
