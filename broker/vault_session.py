"""The broker's own connection to Vault: one hvac client, shared by all requests.

hvac is blocking, so every call runs in a worker thread (`VaultSession.call`) of a
bounded pool sized for the broker's concurrency target; requests' connection pool is
sized to match, so calls are never serialized on a single socket.

Authentication is the broker's own token (`KEYBROKER_VAULT_TOKEN`) or an AppRole login
(`KEYBROKER_VAULT_ROLE_ID` + `KEYBROKER_VAULT_SECRET_ID`). The token is renewed when a
third of its TTL is left, and with AppRole a refused token (403 after expiry or
revocation) triggers one fresh login and one retry. Connection failures, timeouts, 5xx
and a sealed Vault all become `VaultUnavailable`, which the API answers with 503.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import hvac
import hvac.exceptions as hvac_errors
import requests
from requests.adapters import HTTPAdapter

from broker.config import Settings

T = TypeVar("T")

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
    """Vault refused the broker's own token (misconfigured policy or revoked token)."""


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
