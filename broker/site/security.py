"""Browser-facing protections: CSRF tokens and the security headers of every answer.

CSRF is a signed double submit: a random cookie (HttpOnly, SameSite=Strict) and, in
each form, an HMAC of it under a per-process key. A cross-site form can neither read
the cookie nor compute the HMAC, so its POST is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.datastructures import URL
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "kb_csrf"
CSRF_FIELD = "csrf_token"

# No inline script or style, nothing from another origin, no framing, forms post here only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on form
    # posts, and same_origin() below could not tell them from an opaque-origin attacker.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # Nothing the page shows may stay in a cache (shared or the browser's).
    (b"cache-control", b"no-store"),
)


class Csrf:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def token_for(self, cookie: str) -> str:
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.token_for(cookie), token)


def same_origin(origin: str | None, url: URL) -> bool:
    """A POST's Origin (when the browser sends one) is this page's own."""
    if origin is None:
        return True  # older browsers and no-JS form posts may omit it; the CSRF token holds
    return origin == f"{url.scheme}://{url.netloc}"


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP answer (pure ASGI, so errors get them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k not in names]
                message["headers"] = headers + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
