"""Runtime client for the services that use exchange keys (docs/client.md).

The web site reads site keys with short-lived tokens it gets from the broker::

    from broker.client import SiteKeyClient

    site = SiteKeyClient("http://127.0.0.1:8080", caller_token, "https://vault:8200")
    key = site.get_key("alice", "binance")       # ExchangeKey; repr hides the secrets
    exchange = ccxt.binance({"apiKey": key.api_key, "secret": key.secret})

The trading robot logs in with its own AppRole and reads robot keys::

    from broker.client import RobotKeyClient

    robot = RobotKeyClient("https://vault:8200", role_id, secret_id)
    key = robot.get_key("alice", "binance")
    ...
    if robot.has_new_version(key):                # the user replaced the key
        key = robot.get_key("alice", "binance")
    # the user deleted the key: keep running, wait (bounded) for a new one
    key = robot.wait_for_key("alice", "binance", timeout=3600)

Both renew their Vault token before it expires. Errors are typed (KeyNotFound,
AccessDenied, VaultUnavailable, BrokerUnavailable) and their messages, like the
key objects' repr and the log lines, never hold a secret or a token.

Vault API facts relied on: docs/facts/vault.md §3 (KV v2 data/metadata reads, 404 on
deleted keys), §4.2 (error statuses), §5 (AppRole login); the broker's site-token
endpoint: docs/contracts.md §3.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import hvac
import hvac.exceptions
import requests

from broker.durations import parse_duration
from broker.ids import ACCOUNT_PATTERN, EXCHANGE_PATTERN
from broker.names import APPROLE_MOUNT, DEFAULT_MOUNT

log = logging.getLogger("keybroker.client")

_TRANSIT_FIELDS = ("transit_mount", "transit_key", "transit_version", "scheme")


class KeyBrokerClientError(Exception):
    """Base of every error this module raises; messages never hold a secret or token."""


class InvalidIdentifier(KeyBrokerClientError, ValueError):
    """An account or exchange id that could not be a key path (docs/contracts.md §2)."""


class KeyNotFound(KeyBrokerClientError):
    """No readable key at that path: never written, deleted, or every version destroyed."""


class AccessDenied(KeyBrokerClientError):
    """Vault or the broker refused the credentials (wrong policy, expired or revoked)."""


class ServiceUnavailable(KeyBrokerClientError):
    """Retryable: the service could not be reached or answered 5xx/429."""


class VaultUnavailable(ServiceUnavailable):
    """Vault could not be reached, is sealed, or answered 5xx/429."""


class BrokerUnavailable(ServiceUnavailable):
    """The broker could not be reached or answered 5xx."""


@dataclass(frozen=True, repr=False)
class ExchangeKey:
    """One exchange API key as read from Vault. repr/str show no secret."""

    account: str
    exchange: str
    role: str
    api_key: str
    secret: str
    passphrase: str | None
    version: int
    metadata: Mapping[str, str] = field(default_factory=dict)  # non-secret facts only
    # `transit` custody: `secret` is empty and `transit` names the Transit key (mount,
    # key, version, scheme) that signs for it (docs/custody.md).
    transit: Mapping[str, str] = field(default_factory=dict)

    @property
    def custody(self) -> str:
        return "transit" if self.transit else "kv"

    def __repr__(self) -> str:
        return (
            f"ExchangeKey(account={self.account!r}, exchange={self.exchange!r}, "
            f"role={self.role!r}, version={self.version}, api_key={_mask(self.api_key)!r}, "
            "secret=***, passphrase=" + ("***" if self.passphrase else "None") + ")"
        )

    __str__ = __repr__

    def ccxt_config(self) -> dict[str, str]:
        """The credential part of a ccxt exchange config: apiKey, secret, password.
        Under `transit` custody there is no secret: use `signing_exchange()` instead."""
        if self.transit:
            raise KeyBrokerClientError("a transit-custody key has no secret: use signing_exchange")
        config = {"apiKey": self.api_key, "secret": self.secret}
        if self.passphrase:
            config["password"] = self.passphrase
        return config


def _mask(api_key: str) -> str:
    # docs/contracts.md §3: at most the first 4 and last 4 characters.
    return f"{api_key[:4]}...{api_key[-4:]}" if len(api_key) > 12 else "***"


def _check_account(account: str) -> None:
    if not isinstance(account, str) or not ACCOUNT_PATTERN.fullmatch(account):
        raise InvalidIdentifier(f"account must match ^{ACCOUNT_PATTERN.pattern}$")


def _check_ids(account: str, exchange: str) -> None:
    _check_account(account)
    if not isinstance(exchange, str) or not EXCHANGE_PATTERN.fullmatch(exchange):
        raise InvalidIdentifier("exchange must be a ccxt id such as binance")


@contextmanager
def _vault_errors(what: str) -> Iterator[None]:
    """Translate hvac/requests failures into this module's typed errors.

    `from None`: the typed error says what failed; the transport's text is not needed
    and is kept out of logs that print chained tracebacks.
    """
    try:
        yield
    except hvac.exceptions.InvalidPath:
        raise KeyNotFound(f"{what}: not found") from None
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
        raise AccessDenied(f"{what}: permission denied by Vault") from None
    except (
        hvac.exceptions.VaultDown,
        hvac.exceptions.InternalServerError,
        hvac.exceptions.BadGateway,
        hvac.exceptions.RateLimitExceeded,
        hvac.exceptions.VaultNotInitialized,
    ) as exc:
        raise VaultUnavailable(f"{what}: Vault unavailable ({type(exc).__name__})") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise VaultUnavailable(f"{what}: cannot reach Vault ({type(exc).__name__})") from None
    except hvac.exceptions.VaultError as exc:
        raise KeyBrokerClientError(f"{what}: Vault error ({type(exc).__name__})") from None


def post_to_broker(
    http: requests.Session,
    url: str,
    *,
    expected: int,
    refused: str,
    failed: str,
    not_found: str | None = None,
    method: Literal["POST", "GET"] = "POST",
    **request: Any,
) -> requests.Response:
    """POST (or `method`) to the broker and return its `expected`-status answer; anything
    else is this module's typed error: 401/403 AccessDenied ("the broker refused `refused`"), 404
    KeyNotFound(`not_found`) when given, 429/5xx or no connection BrokerUnavailable,
    the rest KeyBrokerClientError(`failed`). `request`: the rest of requests' arguments."""
    try:
        # `post` for POST: callers may hand in a session that wraps it (tests count on it).
        answer = http.post(url, **request) if method == "POST" else http.get(url, **request)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise BrokerUnavailable(f"cannot reach the broker ({type(exc).__name__})") from None
    status = answer.status_code
    if status in (401, 403):
        raise AccessDenied(f"the broker refused {refused} ({status})")
    if status == 404 and not_found is not None:
        raise KeyNotFound(not_found)
    if status >= 500 or status == 429:
        raise BrokerUnavailable(f"the broker answered {status}")
    if status != expected:
        raise KeyBrokerClientError(f"{failed} ({status})")
    return answer


@dataclass
class _Grant:
    """One Vault token and the hvac client that uses it."""

    vault: hvac.Client
    expires_at: float = 0.0  # monotonic time; 0 = no token yet
    ttl: float = 0.0
    # Held while this token is renewed: one account's slow mint never holds up another's.
    lock: threading.Lock = field(default_factory=threading.Lock)


class _KeyReader:
    """Reads `<mount>/data/<role>/<account>/<exchange>` with tokens it keeps fresh.

    A token is kept per scope (`_scope`): one for every account (the robot's AppRole), or
    one per account (site tokens, bound to their account). At most MAX_GRANTS are kept.
    """

    role: str
    MAX_GRANTS = 1024

    def __init__(
        self,
        vault_addr: str,
        *,
        mount: str,
        verify: bool | str,
        timeout: float,
        clock: Callable[[], float],
        renew_margin: float,
    ) -> None:
        self._vault_addr = vault_addr
        self._vault_verify = verify
        self._vault_timeout = timeout
        self._vault_http = requests.Session()  # shared by every grant's hvac client
        self._grants: OrderedDict[str | None, _Grant] = OrderedDict()
        self._mount = mount
        self._clock = clock
        self._renew_margin = renew_margin
        self._lock = threading.Lock()
        # Called with every key read (broker/verifier.py verifies each new version).
        self._on_load: list[Callable[[ExchangeKey], None]] = []

    # Subclasses obtain a token for a scope and say for how many seconds it is valid.
    def _fetch_token(self, scope: str | None) -> tuple[str, float]:
        raise NotImplementedError

    def _scope(self, account: str) -> str | None:
        """Which token serves `account`: None when one token serves every account."""
        return None

    def _vault_for(self, account: str, *, force: bool = False) -> hvac.Client:
        """The hvac client whose token serves `account`, renewed first when due."""
        scope = self._scope(account)
        with self._lock:
            grant = self._grants.get(scope)
            if grant is None:
                grant = self._grants[scope] = _Grant(
                    hvac.Client(
                        url=self._vault_addr,
                        verify=self._vault_verify,
                        timeout=self._vault_timeout,
                        session=self._vault_http,
                    )
                )
            self._grants.move_to_end(scope)
            while len(self._grants) > self.MAX_GRANTS:
                self._grants.popitem(last=False)
        with grant.lock:
            now = self._clock()
            margin = min(self._renew_margin, grant.ttl / 3)  # short TTLs still get used
            if force or not grant.expires_at or now >= grant.expires_at - margin:
                token, ttl = self._fetch_token(scope)
                grant.vault.token = token
                grant.expires_at, grant.ttl = now + ttl, ttl
                log.debug("vault token refreshed for %s keys, valid %.0fs", self.role, ttl)
            return grant.vault

    def close(self) -> None:
        self._vault_http.close()

    def request_poll_token(self) -> str | None:
        """The token that polls the broker for "Check now" requests on every account this
        consumer serves, or None when each account's own token polls (docs/key-health.md)."""
        return None

    def on_load(self, listener: Callable[[ExchangeKey], None]) -> None:
        """Call `listener` with every key `get_key` reads (key health, docs/key-health.md)."""
        self._on_load.append(listener)

    def vault_token(self, account: str) -> str:
        """This consumer's current Vault token for `account` (renewed first when due):
        the broker takes it as proof of which consumer reports a verification, and for
        which account (docs/key-health.md "Who may report")."""
        return str(self._vault_for(account).token)

    def _with_token(self, what: str, account: str, call: Callable[[hvac.Client], Any]) -> Any:
        """Run `call` with the hvac client of a fresh token for `account`; on 403 get a new
        token once and retry (the token may have been revoked or expired early), then
        give up with AccessDenied."""
        vault = self._vault_for(account)
        try:
            with _vault_errors(what):
                return call(vault)
        except AccessDenied:
            vault = self._vault_for(account, force=True)
            with _vault_errors(what):
                return call(vault)

    def get_key(self, account: str, exchange: str) -> ExchangeKey:
        """The current version of the key; KeyNotFound when there is none to read."""
        _check_ids(account, exchange)
        path = f"{self.role}/{account}/{exchange}"
        answer = self._with_token(
            f"read {self.role} key {account}/{exchange}",
            account,
            lambda vault: vault.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self._mount, raise_on_deleted_version=True
            ),
        )
        body = answer.get("data") or {}
        data = body.get("data") or {}
        meta = body.get("metadata") or {}
        transit = {k: str(data[k]) for k in _TRANSIT_FIELDS if k in data}
        if data.get("custody") == "transit" and len(transit) != len(_TRANSIT_FIELDS):
            raise KeyNotFound(f"read {self.role} key {account}/{exchange}: no key data")
        if "api_key" not in data or ("secret" not in data and not transit):
            raise KeyNotFound(f"read {self.role} key {account}/{exchange}: no key data")
        log.info("read %s key %s/%s version %s", self.role, account, exchange, meta.get("version"))
        key = ExchangeKey(
            account=account,
            exchange=exchange,
            role=self.role,
            api_key=str(data["api_key"]),
            secret=str(data.get("secret") or ""),
            passphrase=str(data["passphrase"]) if data.get("passphrase") else None,
            version=int(meta.get("version") or 0),
            metadata={str(k): str(v) for k, v in (meta.get("custom_metadata") or {}).items()},
            transit=transit,
        )
        for listener in self._on_load:
            listener(key)
        return key

    def signing_exchange(
        self,
        account: str,
        exchange: str,
        *,
        asynchronous: bool = False,
        config: Mapping[str, Any] | None = None,
        key: ExchangeKey | None = None,
    ) -> Any:
        """A ccxt exchange object (ccxt.async_support with `asynchronous`) for the current
        key, or `key`. Under `transit` custody its requests are signed through Vault
        (broker/signing.py) and it never holds the secret; under `kv` it holds the secret
        read from Vault. `config`: other ccxt options (urls, timeouts, rate limits).
        A deleted key makes its requests raise KeyNotFound."""
        from broker.signing import build_exchange

        key = key or self.get_key(account, exchange)
        signer = functools.partial(self._transit_call, key.account)
        return build_exchange(key, signer, asynchronous=asynchronous, config=config)

    def _transit_call(
        self, account: str, mount: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        def call(vault: hvac.Client) -> Any:
            try:
                return vault.write_data(f"{mount}/{path}", data=body)
            except hvac.exceptions.InvalidRequest as exc:
                if "key not found" in str(exc):  # Transit's answer for a deleted key
                    raise KeyNotFound(f"{self.role} signing key: not found") from None
                raise

        answer = self._with_token(f"{self.role} signing request", account, call)
        return dict(answer.get("data") or {})

    def list_exchanges(self, account: str) -> list[str]:
        """Exchanges the account has keys of this role for (names only)."""
        _check_account(account)
        try:
            answer = self._with_token(
                f"list {self.role} keys of {account}",
                account,
                lambda vault: vault.secrets.kv.v2.list_secrets(
                    path=f"{self.role}/{account}", mount_point=self._mount
                ),
            )
        except KeyNotFound:
            return []
        return sorted(str(k) for k in (answer.get("data") or {}).get("keys", []) if "/" not in k)


class SiteKeyClient(_KeyReader):
    """For the web site: site keys, read with site tokens minted by the broker.

    Each account's keys are read with a site token bound to that account (its Vault token
    metadata), so a verification report is accepted for that account only. A site token
    is a batch token (not renewable), so "renewing" means asking the broker for a new
    one before the old one expires.
    """

    role = "site"

    def __init__(
        self,
        broker_url: str,
        caller_token: str,
        vault_addr: str,
        *,
        ttl: str | None = None,
        mount: str = DEFAULT_MOUNT,
        verify: bool | str = True,
        timeout: float = 10.0,
        renew_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        """`ttl`: site token TTL to ask for (the broker's default when None; capped by
        the token role's max). `session`: HTTP session for the broker calls."""
        super().__init__(
            vault_addr,
            mount=mount,
            verify=verify,
            timeout=timeout,
            clock=clock,
            renew_margin=renew_margin,
        )
        self._broker_url = broker_url.rstrip("/")
        self._caller_token = caller_token
        self._ttl = ttl
        self._verify = verify
        self._timeout = timeout
        self._http = session or requests.Session()

    def __repr__(self) -> str:
        return f"SiteKeyClient(broker_url={self._broker_url!r})"

    def _scope(self, account: str) -> str | None:
        return account

    def request_poll_token(self) -> str | None:
        # The site backend's token: one poll for every account, however many it serves.
        return self._caller_token

    def _fetch_token(self, scope: str | None) -> tuple[str, float]:
        body = {"ttl": self._ttl} if self._ttl else {}
        if scope is not None:
            body["account"] = scope
        answer = post_to_broker(
            self._http,
            f"{self._broker_url}/v1/site-tokens",
            expected=201,
            refused="the caller token",
            failed="site token request failed",
            json=body,
            headers={"Authorization": f"Bearer {self._caller_token}"},
            timeout=self._timeout,
            verify=self._verify,
        )
        try:
            payload = answer.json()
            token = str(payload["token"])
            ttl = parse_duration(payload["ttl"])
        except (ValueError, KeyError, TypeError):
            raise KeyBrokerClientError("the broker's site token answer is malformed") from None
        return token, ttl

    def close(self) -> None:
        self._http.close()
        super().close()


class RobotKeyClient(_KeyReader):
    """For the trading robot: AppRole login, robot keys, new versions, deleted keys."""

    role = "robot"

    def __init__(
        self,
        vault_addr: str,
        role_id: str,
        secret_id: str,
        *,
        mount: str = DEFAULT_MOUNT,
        approle_mount: str = APPROLE_MOUNT,
        verify: bool | str = True,
        timeout: float = 10.0,
        renew_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            vault_addr,
            mount=mount,
            verify=verify,
            timeout=timeout,
            clock=clock,
            renew_margin=renew_margin,
        )
        self._role_id = role_id
        self._secret_id = secret_id
        self._approle_mount = approle_mount
        self._sleep = sleep
        # Logs in without a token; the tokens it gets live in the grants (_KeyReader).
        self._login_client = hvac.Client(
            url=vault_addr, verify=verify, timeout=timeout, session=self._vault_http
        )

    def __repr__(self) -> str:
        return f"RobotKeyClient(role_id={self._role_id!r})"

    def _fetch_token(self, scope: str | None) -> tuple[str, float]:
        # A fresh login rather than renew-self: it also works after the token hit its
        # max TTL or was revoked, and the robot's secret_id is reusable.
        try:
            with _vault_errors("AppRole login"):
                answer = self._login_client.auth.approle.login(
                    role_id=self._role_id,
                    secret_id=self._secret_id,
                    use_token=False,
                    mount_point=self._approle_mount,
                )
        except KeyBrokerClientError as exc:
            if type(exc) is KeyBrokerClientError:  # Vault answers 400 to a bad secret_id
                raise AccessDenied("AppRole login: role_id or secret_id refused") from None
            raise
        auth = answer.get("auth") or {}
        ttl = float(auth.get("lease_duration") or 0)
        # lease_duration 0 means no expiry (root-like); re-check hourly anyway.
        return str(auth["client_token"]), ttl or 3600.0

    def current_version(self, account: str, exchange: str) -> int | None:
        """The key's current version from its metadata; None when the key is gone."""
        _check_ids(account, exchange)
        try:
            answer = self._with_token(
                f"read robot key metadata {account}/{exchange}",
                account,
                lambda vault: vault.secrets.kv.v2.read_secret_metadata(
                    path=f"robot/{account}/{exchange}", mount_point=self._mount
                ),
            )
        except KeyNotFound:
            return None
        data = answer.get("data") or {}
        current = int(data.get("current_version") or 0)
        version = (data.get("versions") or {}).get(str(current)) or {}
        if not current or version.get("destroyed") or version.get("deletion_time"):
            return None
        return current

    def has_new_version(self, key: ExchangeKey) -> bool:
        """True when the key was replaced (or deleted) since `key` was read."""
        return self.current_version(key.account, key.exchange) != key.version

    def wait_for_key(
        self,
        account: str,
        exchange: str,
        timeout: float,
        *,
        newer_than: int | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> ExchangeKey:
        """Poll (exponential backoff with jitter, capped at `max_delay`) until a key is
        readable, and newer than version `newer_than` when given. Vault outages while
        waiting are ridden out. Raises KeyNotFound when `timeout` seconds pass."""
        _check_ids(account, exchange)
        deadline = self._clock() + timeout
        delay = initial_delay
        while True:
            try:
                key = self.get_key(account, exchange)
                if newer_than is None or key.version > newer_than:
                    return key
            except (KeyNotFound, ServiceUnavailable) as exc:
                log.info("waiting for robot key %s/%s (%s)", account, exchange, type(exc).__name__)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise KeyNotFound(
                    f"no robot key {account}/{exchange} appeared within {timeout:.0f}s"
                )
            self._sleep(min(delay * random.uniform(0.8, 1.2), remaining))
            delay = min(delay * 2, max_delay)
