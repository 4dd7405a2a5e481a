"""The broker's own connection to Vault, shared by all requests.

Two paths, one token:
- `request()`: the per-request calls (KV metadata/data/destroy, token lookup, site token
  creation) go out on the event loop through one pooled aiohttp session. Measured
  against devvault, an hvac call through requests costs ~1.3 ms of CPU and an aiohttp
  call ~0.45 ms, and the broker makes up to four of them per key submission; errors
  map onto the same hvac exception classes (hvac/exceptions.py) as hvac's own calls.
- `call()` / `call_blocking()`: hvac, in a bounded worker-thread pool, for login,
  renewal and anything rare.

Authentication is the broker's own token (`KEYBROKER_VAULT_TOKEN`) or an AppRole login
(`KEYBROKER_VAULT_ROLE_ID` + `KEYBROKER_VAULT_SECRET_ID`). The token is renewed when a
third of its TTL is left, and with AppRole a refused token (403 after expiry or
revocation) triggers one fresh login and one retry. Connection failures, timeouts, 5xx
and a sealed Vault all become `VaultUnavailable`, which the API answers with 503.
"""

from __future__ import annotations

import asyncio
import json as json_module
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
import hvac
import hvac.exceptions as hvac_errors
import requests
from requests.adapters import HTTPAdapter

from broker.config import Settings

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"

_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    hvac_errors.VaultDown,
    hvac_errors.InternalServerError,
    hvac_errors.BadGateway,
    hvac_errors.VaultNotInitialized,
    hvac_errors.RateLimitExceeded,
)


class VaultUnavailable(Exception):
    """Vault could not be reached, is sealed, or failed; safe to retry later."""

    retry_after = 2


class VaultRefused(Exception):
    """Vault answered 403 to the broker: its token lacks the policy, or was revoked.

    `vault_message` is Vault's own error text (never a secret: Vault does not echo
    tokens), for callers that must tell "bad token" (the one looked up) apart."""

    def __init__(self, message: str, vault_message: str = "") -> None:
        super().__init__(message)
        self.vault_message = vault_message


ObserveFn = Callable[[str, float], None]


class VaultSession:
    """Thread-safe holder of the broker's authenticated hvac client."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_concurrency: int = 128,
        timeout: float = 10.0,
        observe: ObserveFn | None = None,
    ) -> None:
        self._settings = settings
        self._observe = observe or (lambda op, seconds: None)
        self._max_concurrency = max_concurrency
        self._timeout = timeout
        self._base = settings.vault_addr.rstrip("/")
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(settings.vault_cacert))
            if settings.vault_cacert
            else True
        )
        self._aio: aiohttp.ClientSession | None = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None
        # A plain executor: dispatching through it costs a fraction of anyio's to_thread,
        # which matters at one to four Vault calls per request.
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="vault")
        self._http = requests.Session()
        # No proxy, netrc or CA-bundle lookups from the environment: Vault is reached
        # exactly as configured (and requests skips those lookups on every call).
        self._http.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_concurrency)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        verify: bool | str = str(settings.vault_cacert) if settings.vault_cacert else True
        self._http.verify = verify
        self._client = hvac.Client(
            url=settings.vault_addr, verify=verify, timeout=timeout, session=self._http
        )
        self._auth_lock = threading.Lock()
        self._authenticated = False
        self._renew_at: float | None = None  # monotonic time; None: never expires
        self._renewable = False
        if settings.vault_token is None and not (
            settings.vault_role_id and settings.vault_secret_id
        ):
            raise ValueError(
                "the broker needs KEYBROKER_VAULT_TOKEN or "
                "KEYBROKER_VAULT_ROLE_ID + KEYBROKER_VAULT_SECRET_ID"
            )

    @property
    def uses_approle(self) -> bool:
        return self._settings.vault_token is None

    @property
    def addr(self) -> str:
        return self._settings.vault_addr

    # ----------------------------------------------------------------- calls
    async def call(self, operation: str, fn: Callable[[hvac.Client], T]) -> T:
        """Run `fn(client)` in a worker thread; metrics label it `operation`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.call_blocking, operation, fn)

    async def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        wrap_ttl: str | None = None,
        missing_ok: bool = False,
        token: str | None = None,
    ) -> dict[str, Any] | None:
        """One Vault API call on the event loop: the JSON body, None for 204 (or for 404
        with `missing_ok`). Raises VaultUnavailable, VaultRefused or hvac's exception for
        the status (InvalidRequest, InvalidPath, ...).

        `token`: make this one call with a caller's token instead of the broker's own
        (site tokens are minted with the site backend's token); it is used for this
        request only, never stored, and a 403 is then about it, not about ours."""
        started = time.perf_counter()
        try:
            if token is None and self._auth_due():
                await self.call("login", lambda client: None)  # login/renew in a thread
            status, body = await self._send(method, path, json, wrap_ttl, token)
            if status == 403 and token is None and self._may_be_our_token(body):
                loop = asyncio.get_running_loop()
                if await loop.run_in_executor(self._executor, self._token_was_refused):
                    await loop.run_in_executor(self._executor, self._relogin)
                    status, body = await self._send(method, path, json, wrap_ttl, None)
        finally:
            self._observe(operation, time.perf_counter() - started)
        if status in (200, 204):
            return body or None
        if status == 404 and missing_ok:
            return None
        errors = [str(e) for e in (body or {}).get("errors") or []]
        message = ", ".join(errors)
        if status == 403:
            raise VaultRefused(f"Vault refused the broker's {operation} call", message)
        if status == 429 or status >= 500:  # rate limited, sealed, failing
            raise VaultUnavailable(f"Vault is unavailable ({status})")
        raise hvac_errors.VaultError.from_status(
            status, message, errors=errors, method=method.lower(), url=path
        )

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        wrap_ttl: str | None,
        token: str | None,
    ) -> tuple[int, dict[str, Any] | None]:
        own = self._client.token or ""
        headers = {"X-Vault-Token": own if token is None else token, "X-Vault-Request": "true"}
        if wrap_ttl:
            headers["X-Vault-Wrap-TTL"] = wrap_ttl
        data: bytes | None = None
        if method == "PATCH":
            # Vault takes PATCH only as a JSON merge patch (docs/facts/vault.md §1.3).
            headers["Content-Type"] = MERGE_PATCH
            data, body = json_module.dumps(body or {}).encode(), None
        try:
            async with self._aiohttp().request(
                method, self._base + path, json=body, data=data, headers=headers
            ) as response:
                if response.status == 204:
                    return 204, None
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                return response.status, payload if isinstance(payload, dict) else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VaultUnavailable(f"Vault is unavailable ({type(exc).__name__})") from None

    def _aiohttp(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop (one per loop; the app has one)."""
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio_loop is not loop or self._aio.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, ssl=self._ssl, use_dns_cache=True
            )
            self._aio = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                trust_env=False,
            )
            self._aio_loop = loop
        return self._aio

    async def aclose(self) -> None:
        if self._aio is not None and self._aio_loop is asyncio.get_running_loop():
            await self._aio.close()
        self._aio = None
        self.close()

    def _auth_due(self) -> bool:
        return not self._authenticated or (
            self._renew_at is not None and time.monotonic() >= self._renew_at
        )

    def _may_be_our_token(self, body: dict[str, Any] | None) -> bool:
        """A 403 may mean our token expired. Not when Vault says the token we asked it
        to look up is bad, and never worth asking with a static token."""
        text = " ".join(str(e) for e in (body or {}).get("errors") or [])
        return self.uses_approle and "bad token" not in text

    def call_blocking(self, operation: str, fn: Callable[[hvac.Client], T]) -> T:
        started = time.perf_counter()
        try:
            try:
                self._ensure_token()
            except (hvac_errors.Forbidden, hvac_errors.InvalidRequest):
                raise VaultRefused("Vault refused the broker's own credentials") from None
            try:
                return fn(self._client)
            except hvac_errors.Forbidden:
                # Our own token may have expired or been revoked: log in again once.
                if not self.uses_approle or not self._token_was_refused():
                    raise VaultRefused(f"Vault refused the broker's {operation} call") from None
                self._relogin()
                try:
                    return fn(self._client)
                except hvac_errors.Forbidden:
                    raise VaultRefused(f"Vault refused the broker's {operation} call") from None
        except _UNAVAILABLE_ERRORS as exc:
            raise VaultUnavailable(f"Vault is unavailable ({type(exc).__name__})") from None
        finally:
            self._observe(operation, time.perf_counter() - started)

    def health(self, timeout: float = 2.0) -> tuple[bool, str]:
        """(ready, detail) from sys/health: ready means initialized, unsealed, active or standby."""
        try:
            response = self._http.get(
                f"{self._settings.vault_addr.rstrip('/')}/v1/sys/health",
                params={"standbyok": "true", "perfstandbyok": "true"},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            return False, f"Vault unreachable ({type(exc).__name__})"
        if response.status_code == 200:
            return True, "ok"
        if response.status_code == 503:
            return False, "Vault is sealed"
        if response.status_code == 501:
            return False, "Vault is not initialized"
        return False, f"Vault health answered {response.status_code}"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    # ---------------------------------------------------------- token life
    def _ensure_token(self) -> None:
        if self._authenticated and (self._renew_at is None or time.monotonic() < self._renew_at):
            return
        with self._auth_lock:  # one thread logs in or renews; the others wait for it
            if not self._authenticated:
                self._login_locked()
            elif self._renew_at is not None and time.monotonic() >= self._renew_at:
                self._renew_or_relogin_locked()

    def _relogin(self) -> None:
        with self._auth_lock:
            self._login_locked()

    def _login_locked(self) -> None:
        if self._settings.vault_token is not None:
            self._client.token = self._settings.vault_token.get_secret_value()
            data = self._client.auth.token.lookup_self()["data"]
            self._schedule(int(data.get("ttl") or 0), bool(data.get("renewable")))
        else:
            secret_id = self._settings.vault_secret_id
            assert secret_id is not None
            auth = self._client.auth.approle.login(
                role_id=self._settings.vault_role_id,
                secret_id=secret_id.get_secret_value(),
                use_token=True,
            )["auth"]
            self._schedule(int(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
        self._authenticated = True

    def _schedule(self, ttl: int, renewable: bool) -> None:
        self._renewable = renewable
        # Renew (or log in again) when a third of the TTL is left; ttl 0 never expires.
        self._renew_at = None if ttl <= 0 else time.monotonic() + ttl * 2 / 3

    def _renew_or_relogin_locked(self) -> None:
        if self._renewable:
            try:
                auth = self._client.auth.token.renew_self()["auth"]
                self._schedule(int(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
                return
            except hvac_errors.VaultError:
                pass  # past its max TTL or revoked: fall through to a fresh login
        if self.uses_approle:
            self._login_locked()
        else:
            self._renew_at = None  # a static token cannot be replaced; keep using it

    def _token_was_refused(self) -> bool:
        """After a 403: is it our token (expired/revoked) rather than the operation?"""
        try:
            self._client.auth.token.lookup_self()
        except (hvac_errors.Forbidden, hvac_errors.InvalidRequest):
            return True
        return False

    def expire_now(self) -> None:
        """Make the next call renew (or log in again) first; for tests and SIGHUP-style use."""
        with self._auth_lock:
            if self._renew_at is not None:
                self._renew_at = time.monotonic()
