"""Short-lived site tokens minted through the `keybroker-site` token role.

The role (broker/layout.py) makes them batch, orphan, non-renewable, CIDR-bound and
limited to `keybroker-site-read`; the broker only picks the TTL, which it checks against
the role's maximum first so that an over-long request gets a clear 400 rather than a
silently shortened token. With an account the token carries it in its metadata
(`meta.account`, shown by a token lookup and in Vault's audit log): the token is then
bound to that account for the broker's account checks, e.g. who may report a
verification (docs/key-health.md "Who may report"). With a wrap TTL the token is
response-wrapped by Vault and only the single-use wrapping token leaves the broker.

Who mints: the calling site backend, with its own Vault token (policy
keybroker-site-backend may create from the role; the broker's policy may not). The
broker relays that one request with the caller's token and keeps nothing: so no chain
from the broker's own identity reaches a site key (`keybroker policy check`,
docs/policy-checks.md), and a stolen broker credential mints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import hvac.exceptions as hvac_errors

from broker.config import Settings
from broker.durations import format_duration, parse_duration
from broker.names import ACCOUNT_META_KEY
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable

MAX_WRAP_TTL = 3600.0


class InvalidTTL(ValueError):
    pass


class CallerCannotMint(Exception):
    """Vault refused to mint with the caller's token (403 to the caller): its policies
    do not allow the site token role, or the token cannot create tokens at all (batch
    or use-limited). The message is Vault's reason, never the token."""


@dataclass(frozen=True)
class SiteToken:
    token: str
    ttl: int
    expires_at: datetime
    policies: list[str]
    account: str | None = None

    def __repr__(self) -> str:  # the token is a credential
        return f"SiteToken(ttl={self.ttl}, policies={self.policies}, account={self.account!r})"


@dataclass(frozen=True)
class WrappedSiteToken:
    wrap_token: str
    wrap_ttl: int

    def __repr__(self) -> str:
        return f"WrappedSiteToken(wrap_ttl={self.wrap_ttl})"


def parse_ttl(value: str | int | None, *, default: float, maximum: float, what: str) -> float:
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError):
        raise InvalidTTL(f"{what} must be a duration such as 90s, 5m or 300") from None
    if seconds < 1:
        raise InvalidTTL(f"{what} must be at least 1s")
    if seconds > maximum:
        raise InvalidTTL(
            f"{what} {format_duration(seconds)} exceeds the maximum of {format_duration(maximum)}"
        )
    return seconds


class SiteTokenMinter:
    def __init__(self, settings: Settings, session: VaultSession) -> None:
        self._settings = settings
        self._session = session

    def ttl(self, requested: str | int | None) -> float:
        return parse_ttl(
            requested,
            default=self._settings.site_token_ttl,
            maximum=self._settings.site_token_max_ttl,
            what="ttl",
        )

    def wrap_ttl(self, requested: str | int | None) -> float | None:
        if requested is None:
            return None
        return parse_ttl(requested, default=0, maximum=MAX_WRAP_TTL, what="wrap_ttl")

    async def mint(
        self, caller_token: str, ttl: float, wrap_ttl: float | None, account: str | None = None
    ) -> SiteToken | WrappedSiteToken:
        """Mint with `caller_token` (the site backend's own token, already authenticated
        as holding keybroker-site-backend); it is used for this one request only.
        `account` (already validated) goes into the token's metadata."""
        role = self._settings.site_token_role
        path = f"/v1/auth/token/create/{role}"
        body: dict[str, object] = {"ttl": format_duration(ttl)}
        if account is not None:
            body["meta"] = {ACCOUNT_META_KEY: account}
        wrap = format_duration(wrap_ttl) if wrap_ttl else None

        try:
            response = await self._session.request(
                "create_site_token", "POST", path, json=body, wrap_ttl=wrap, token=caller_token
            )
        except VaultRefused:
            raise CallerCannotMint(
                f"Vault refused to mint from token role {role} with this token: its "
                "policies must allow update on auth/token/create/" + role
            ) from None
        except hvac_errors.InvalidRequest as exc:
            # e.g. "batch tokens cannot create more tokens" (Vault's own words)
            reason = ", ".join(str(e) for e in exc.errors or []) or "invalid request"
            raise CallerCannotMint(f"Vault refused to mint with this token: {reason}") from None
        if response is None:
            raise VaultUnavailable("Vault answered the token request without a body")
        if wrap:
            info = response["wrap_info"]
            return WrappedSiteToken(wrap_token=info["token"], wrap_ttl=int(info["ttl"]))
        auth = response["auth"]
        lease = int(auth.get("lease_duration") or ttl)
        return SiteToken(
            token=auth["client_token"],
            ttl=lease,
            expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lease),
            policies=list(auth.get("policies") or []),
            account=account,
        )
