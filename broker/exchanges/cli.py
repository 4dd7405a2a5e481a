"""`keybroker check-key` (docs/contracts.md §5): inspect one key, store nothing.

Exit 0 accepted, 1 rejected, 3 retryable (exchange unavailable or rate limited),
2 usage error (missing credentials, unknown or disabled exchange, bad configuration).
JSON output is exactly a CheckResult; text output is for people. Neither ever shows
the secret, the passphrase or the whole api key.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from broker.config import ConfigError, Settings, load_settings
from broker.exchanges.base import Credentials, mask_api_key
from broker.exchanges.registry import get_adapter
from broker.names import ROLES
from broker.reasons import CheckResult

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_RETRYABLE = 3


def check_key(
    exchange: str,
    role: str,
    api_key: str | None,
    secret: str | None,
    passphrase: str | None,
    output_format: str = "text",
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def usage(message: str) -> int:
        print(f"error: {message}", file=err)
        return EXIT_USAGE

    if output_format not in ("text", "json"):
        return usage("--format must be text or json")
    if role not in ROLES:
        return usage("--role must be site or robot")
    try:
        settings = settings or load_settings()
    except ConfigError as exc:
        return usage(str(exc))
    adapter = get_adapter(exchange)
    if adapter is None:
        return usage(f"unknown exchange {exchange!r} (supported: {_supported()})")
    if exchange not in settings.exchanges:
        return usage(f"exchange {exchange!r} is not enabled (KEYBROKER_EXCHANGES)")
    missing = [flag for flag, value in (("--api-key", api_key), ("--secret", secret)) if not value]
    if adapter.requires_passphrase and not passphrase:
        missing.append("--passphrase")
    if missing:
        return usage(
            f"missing {', '.join(missing)} for {exchange} (or set KEYBROKER_API_KEY, "
            "KEYBROKER_API_SECRET, KEYBROKER_API_PASSPHRASE)"
        )
    assert api_key is not None and secret is not None  # checked just above
    credentials = Credentials(api_key=api_key, secret=secret, passphrase=passphrase or None)
    result = asyncio.run(_check(settings, exchange, role, credentials))
    if output_format == "json":
        print(result.model_dump_json(), file=out)
    else:
        _print_text(result, mask_api_key(api_key), out)
    if result.accepted:
        return EXIT_ACCEPTED
    return EXIT_RETRYABLE if result.retryable else EXIT_REJECTED


async def _check(
    settings: Settings, exchange: str, role: str, credentials: Credentials
) -> CheckResult:
    from broker.exchanges.checker import KeyChecker

    checker = KeyChecker(settings)
    try:
        return await checker.check(exchange, role, credentials)
    finally:
        await checker.aclose()


def _supported() -> str:
    from broker.exchanges.registry import ADAPTERS

    return ", ".join(sorted(ADAPTERS))


def _print_text(result: CheckResult, masked_key: str, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False, soft_wrap=True)
    if result.accepted:
        verdict = "[bold green]ACCEPTED[/]"
    elif result.retryable:
        verdict = "[bold yellow]NOT CHECKED (retry later)[/]"
    else:
        verdict = "[bold red]REJECTED[/]"
    console.print(f"{result.exchange} {result.role} key {masked_key}: {verdict}")
    rights = Table(show_header=True, header_style="bold", box=None)
    names = list(type(result.permissions).model_fields)
    for name in names:
        rights.add_column(name)
    rights.add_row(*("yes" if getattr(result.permissions, name) else "no" for name in names))
    console.print(rights)
    if result.ip_restricted is None:
        ip_text = "unknown"
    elif not result.ip_restricted:
        ip_text = "none (any address)"
    elif result.ip_whitelist is None:
        ip_text = "restricted (list not disclosed)"
    else:
        ip_text = ", ".join(result.ip_whitelist)
    console.print(f"IP whitelist: {ip_text}", markup=False)
    if result.expires_at is not None:
        console.print(f"Expires: {result.expires_at.isoformat()}", markup=False)
    for item in result.reasons:
        style = "red" if item.severity == "error" else "yellow"
        console.print(f"[{style}]{item.severity}[/] {item.code}: ", end="")
        console.print(item.message, markup=False)
