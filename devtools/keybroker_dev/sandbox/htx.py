"""HTX (Huobi): `GET /v2/user/uid`, then `GET /v2/user/api-key?uid=...&accessKey=...`.

Follows docs/facts/exchanges.md § HTX and the official docs it cites:
https://www.htx.com/en-us/opend/newApiPages/?id=419 (Signature V2: query parameters
`AccessKeyId`, `SignatureMethod=HmacSHA256`, `SignatureVersion=2`, `Timestamp` as
`YYYY-MM-DDThh:mm:ss` UTC, sorted by ASCII name with URL-encoded values; `Signature` =
base64 HMAC-SHA256 of METHOD\\nhost\\npath\\nsorted-query), the "Get API Key Information"
and "Get UID" pages of https://huobiapi.github.io/docs/spot/v1/en/ (shapes, `permission`,
`ipAddresses`, `validDays`, `status`) and the error pages there (`api-signature-not-valid`
with its "Signature not valid: <reason>" texts, v2 codes 1002/1003, rate-limit codes).

The signed host: HTX verifies against its own host name. ccxt signs `self.hostname`, which
stays `api.huobi.pro` when only the URLs are rewritten to point here, but a client that
sets `hostname` to the sandbox's address signs that instead; both are accepted.
Unconfirmed by the docs (exchanges.md "Not confirmed"): the exact error for a caller IP
outside the whitelist (rendered as `api-signature-not-valid` "Incorrect IP address").
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import unquote

from keybroker_dev.sandbox.base import (
    Endpoint,
    ExchangeSim,
    Refusal,
    Refused,
    Reply,
    SandboxRequest,
    check_window,
    hmac_digest,
    ms,
    same,
)
from keybroker_dev.sandbox.keys import SandboxKey
from keybroker_dev.sandbox.state import SandboxState

WINDOW_MS = 60_000
CANONICAL_HOSTS = ("api.huobi.pro", "api.htx.com", "api-aws.huobi.pro")

_V1_ERRORS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.MISSING_CREDENTIALS: (
        200,
        "api-signature-not-valid",
        "Signature not valid: Missing required parameter [缺少必要参数]",
    ),
    Refusal.UNKNOWN_KEY: (
        200,
        "api-signature-not-valid",
        "Signature not valid: Incorrect Access key [Access key错误]",
    ),
    Refusal.KEY_EXPIRED: (
        200,
        "api-signature-not-valid",
        "Signature not valid: Incorrect Access key [Access key错误]",
    ),
    Refusal.BAD_TIMESTAMP: (
        200,
        "api-signature-not-valid",
        "Signature not valid: Incorrect timestamp or expired [时间戳错误或过期]",
    ),
    Refusal.IP_REFUSED: (
        200,
        "api-signature-not-valid",
        "Signature not valid: Incorrect IP address [IP地址错误]",
    ),
    Refusal.RATE_LIMITED: (
        429,
        "base-request-exceed-frequency-limit",
        "Frequency of requests has exceeded the limit, please try again later",
    ),
    Refusal.UNAVAILABLE: (503, "system-maintenance", "System is in maintenance!"),
}


def _pairs(raw_query: str) -> list[tuple[str, str]]:
    """Raw (still encoded) name/value pairs, in the order sent."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        name, _, value = part.partition("=")
        pairs.append((name, value))
    return pairs


def _timestamp_ms(encoded: str) -> int:
    try:
        moment = datetime.strptime(unquote(encoded), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise Refused(Refusal.BAD_TIMESTAMP) from None
    return int(moment.timestamp() * 1000)


class Htx(ExchangeSim):
    name = "htx"

    def presented_key(self, request: SandboxRequest) -> str | None:
        return request.query.get("AccessKeyId")

    def authenticate(self, request: SandboxRequest, state: SandboxState) -> SandboxKey:
        pairs = _pairs(request.raw_query)
        params = dict(pairs)
        for name in ("AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp"):
            if not params.get(name):
                raise Refused(Refusal.MISSING_CREDENTIALS)
        signature = params.get("Signature")
        if not signature:
            raise Refused(Refusal.MISSING_CREDENTIALS)
        if params["SignatureMethod"] != "HmacSHA256" or params["SignatureVersion"] != "2":
            raise Refused(Refusal.BAD_SIGNATURE)
        key = self.known_key(state, unquote(params["AccessKeyId"]))
        check_window(request, _timestamp_ms(params["Timestamp"]), WINDOW_MS, WINDOW_MS)
        query = "&".join(f"{n}={v}" for n, v in sorted(p for p in pairs if p[0] != "Signature"))
        try:
            presented = base64.b64decode(unquote(signature), validate=True)
        except ValueError:
            raise Refused(Refusal.BAD_SIGNATURE) from None
        hosts = (*CANONICAL_HOSTS, request.host, f"{request.host}/{self.name}")
        for host in hosts:
            payload = "\n".join((request.method, host, request.path, query))
            if same(hmac_digest(key.secret, payload).hex(), presented.hex()):
                return key
        raise Refused(Refusal.BAD_SIGNATURE)

    def refusal(self, refusal: Refusal, request: SandboxRequest) -> Reply:
        if refusal in (Refusal.BAD_SIGNATURE, Refusal.BAD_PASSPHRASE):
            return Reply.json({"code": 1003, "message": "invalid signature"})
        if refusal is Refusal.NO_PERMISSION:
            # ccxt raises nothing for this one (exchanges.md): callers must check `code`.
            return Reply.json({"code": 1002, "message": "unauthorized"})
        if refusal is Refusal.NOT_FOUND:
            return Reply.json({"code": 404, "message": "Not Found", "data": None}, 404)
        status, code, msg = _V1_ERRORS[refusal]
        body = {"status": "error", "err-code": code, "err-msg": msg, "data": None}
        return Reply.json(body, status)

    def uid(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        return Reply.json({"code": 200, "data": key.uid})

    def api_key(self, request: SandboxRequest, key: SandboxKey, state: SandboxState) -> Reply:
        query = request.query
        if query.get("uid") != str(key.uid):
            # "the parent user to query their own API key information": another uid is not
            # the caller's to read.
            return Reply.json({"code": 403, "message": "uid is not allowed", "data": None})
        wanted = query.get("accessKey")
        keys = [k for k in state.keys_of(self.name) if k.uid == key.uid]
        if wanted:
            keys = [k for k in keys if k.api_key == wanted]
        data = [self._key_info(k, request) for k in keys]
        return Reply.json({"code": 200, "message": "success", "data": data})

    @staticmethod
    def _key_info(key: SandboxKey, request: SandboxRequest) -> dict[str, object]:
        permission = ["readOnly"]
        if key.spot_trade or key.margin or key.futures or key.transfer:
            permission.append("trade")
        if key.withdraw:
            permission.append("withdraw")
        valid_days = -1
        if key.expires_at is not None:
            valid_days = max((key.expires_at - request.now).days, 0)
        return {
            "accessKey": key.api_key,
            "status": "expired" if key.expired(request.now) else "normal",
            "note": key.label,
            "permission": ",".join(permission),
            "ipAddresses": ",".join(key.ip_whitelist or ()),
            "validDays": valid_days,
            "createTime": ms(key.created_at),
            "updateTime": ms(key.created_at),
        }

    @property
    def endpoints(self) -> dict[tuple[str, str], Endpoint]:  # type: ignore[override]
        return {
            ("GET", "/v2/user/uid"): Endpoint(self.uid),
            ("GET", "/v2/user/api-key"): Endpoint(self.api_key),
        }
