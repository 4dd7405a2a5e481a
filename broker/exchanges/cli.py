"""`keybroker check-key` (docs/contracts.md §5): inspect one key, store nothing.

Exit 0 accepted, 1 rejected, 3 retryable (exchange unavailable or rate limited),
2 usage error (missing credentials, unknown or disabled exchange, bad configuration).
JSON output is exactly a CheckResult; text output is for people. Neither ever shows
the secret, the passphrase or the whole api key.

`--dev` takes what `keybroker dev` wrote to its state file: the sandbox's URLs and the
settings its broker checks keys with, and, with `--sandbox-key LABEL`, that sandbox key.
`--exchange-url URL` aims the one exchange checked at URL (a testnet, a sandbox).
When the check ends before the exchange said anything about the key's rights, the text
output says what happened and what to try instead of a table of unknown rights.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from broker.config import ConfigError, Settings, load_settings
from broker.exchanges.base import Credentials, mask_api_key
from broker.exchanges.registry import get_adapter
from broker.names import ROLES
from broker.reasons import CheckResult, ReasonCode

EXIT_ACCEPTED = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_RETRYABLE = 3

# What to try when a check learned nothing about the key, beyond the reason's own words.
_CANNOT_REACH = (
    "check that the exchange answers at its URL (KEYBROKER_EXCHANGE_URLS, --exchange-url; "
    "--dev for the running dev sandbox), then try again"
)
NEXT_STEP: dict[ReasonCode, str] = {
    ReasonCode.INVALID_CREDENTIALS: "check the api key, secret and passphrase, and that the "
    "key belongs to this exchange (live, not a testnet, or the reverse: --exchange-url)",
    ReasonCode.IP_NOT_ALLOWED: "the exchange refused the address this check came from: "
    "run it from an address on the key's whitelist, or add this one",
    ReasonCode.EXCHANGE_UNAVAILABLE: _CANNOT_REACH,
    ReasonCode.RATE_LIMITED: "wait a minute, then try again",
    ReasonCode.UNSUPPORTED_EXCHANGE: "use one of the enabled exchanges (KEYBROKER_EXCHANGES)",
}


class DevStateError(ValueError):
    """The dev state file cannot be used; the message says why and what to do."""


def dev_state(path: Path) -> dict[str, Any]:
    """What `keybroker dev` wrote (devtools/keybroker_dev/devmode.py, DevState)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevStateError(
            f"no dev state file at {path}: start `keybroker dev` (or `make dev`) first, "
            "or give its --state-file"
        ) from None
    except (OSError, ValueError) as exc:
        raise DevStateError(
            f"cannot read the dev state file {path}: {type(exc).__name__}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("check_settings"), dict):
        raise DevStateError(
            f"{path} holds no check_settings: it was written by an older `keybroker dev`; "
            "restart it"
        )
    return data


def sandbox_credentials(
    state: dict[str, Any], exchange: str, label: str
) -> tuple[str, str, str | None]:
    keys = state.get("sandbox_keys", {}).get(exchange, {})
    if label not in keys:
        raise DevStateError(
            f"no sandbox key {label!r} on {exchange} (labels: {', '.join(sorted(keys))})"
        )
    key = keys[label]
    return key["api_key"], key["secret"], key.get("passphrase")


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
    *,
    dev: bool = False,
    state_file: Path | None = None,
    sandbox_key: str | None = None,
    exchange_url: str | None = None,
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
    if sandbox_key is not None and not dev:
        return usage("--sandbox-key takes a key from the dev state file: add --dev")
    overrides: dict[str, Any] = {}
    if dev:
        if state_file is None:
            return usage("--dev needs the dev state file (--state-file)")
        try:
            state = dev_state(state_file)
            if sandbox_key is not None:
                api_key, secret, passphrase = sandbox_credentials(state, exchange, sandbox_key)
        except DevStateError as exc:
            return usage(str(exc))
        overrides = dict(state["check_settings"])
    try:
        settings = settings or load_settings(**overrides)
        if exchange_url is not None:
            urls = dict(settings.exchange_urls) | {exchange: exchange_url}
            settings = load_settings(**(overrides | {"exchange_urls": urls}))
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
    if not result.rights_read:
        _print_nothing_learned(result, masked_key, verdict, console)
        return
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


def _print_nothing_learned(
    result: CheckResult, masked_key: str, verdict: str, console: Any
) -> None:
    """The check ended before the exchange said anything about the key: no rights table,
    which would read as "no rights", but what happened and what to try."""
    console.print(
        f"{result.exchange} {result.role} key {masked_key}: {verdict} "
        "(nothing was learned about its rights)"
    )
    for item in result.reasons:
        console.print(f"[red]{item.severity}[/] {item.code}: ", end="")
        console.print(item.message, markup=False)
        step = NEXT_STEP.get(item.code)
        if step is not None:
            console.print(f"What to do: {step}", markup=False)
