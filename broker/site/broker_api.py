"""The broker's key endpoints (docs/contracts.md §3) and its status listing across
accounts (`GET /v1/keys`, docs/key-health.md), called with the intake token.

The token and the submitted credentials live only in the request made here: they are
never logged, and errors carry the broker's error code and message, never a body sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from broker.names import Role


class BrokerUnavailable(Exception):
    """The broker did not answer (or answered something that is not its API)."""


@dataclass
class BrokerAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    @property
    def reasons(self) -> list[dict[str, Any]]:
        reasons = self.body.get("reasons")
        return reasons if isinstance(reasons, list) else []


@dataclass(frozen=True)
class Submission:
    name: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)

    def body(self) -> dict[str, str]:
        body = {"name": self.name, "api_key": self.api_key, "secret": self.secret}
        if self.passphrase:
            body["passphrase"] = self.passphrase
        return body


class BrokerApi:
    def __init__(self, base_url: str, intake_token: str, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {intake_token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"BrokerApi({self._base!r})"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _key_url(self, account: str, exchange: str | None = None, role: Role | None = None) -> str:
        url = f"{self._base}/v1/accounts/{quote(account, safe='')}/keys"
        if exchange is not None and role is not None:
            url += f"/{quote(exchange, safe='')}/{quote(role, safe='')}"
        return url

    async def _call(self, method: str, url: str, json: Any = None) -> BrokerAnswer:
        if self._session is None:
            # trust_env=False: the token goes exactly where configured, through no proxy.
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
        try:
            async with self._session.request(
                method, url, json=json, headers=self._headers
            ) as response:
                if response.status == 204:
                    return BrokerAnswer(204)
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    raise BrokerUnavailable(f"the broker answered {response.status}") from None
                return BrokerAnswer(response.status, body if isinstance(body, dict) else {})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the broker did not answer ({type(exc).__name__})") from None

    async def list_keys(self, account: str) -> BrokerAnswer:
        return await self._call("GET", self._key_url(account))

    async def key_health(self, status: str | None, limit: int) -> BrokerAnswer:
        """Keys by status across accounts: `{"keys", "total", "counts", "index_complete"}`."""
        query = {"limit": str(limit), **({"status": status} if status else {})}
        return await self._call("GET", f"{self._base}/v1/keys?{urlencode(query)}")

    async def get_key(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        return await self._call("GET", self._key_url(account, exchange, role))

    async def put_key(
        self, account: str, exchange: str, role: Role, submission: Submission
    ) -> BrokerAnswer:
        return await self._call(
            "PUT", self._key_url(account, exchange, role), json=submission.body()
        )

    async def request_verification(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        """ "Check now": the key's consumer is asked to verify it (202, 404 without a key)."""
        url = self._key_url(account, exchange, role) + "/verification-requests"
        return await self._call("POST", url)

    async def delete_key(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        return await self._call("DELETE", self._key_url(account, exchange, role))
