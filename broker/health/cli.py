"""`keybroker keys status`: keys by health status, from the broker's index (GET /v1/keys).

A table of counts (status x exchange) and the keys that are not `connected`, or the
broker's JSON answer; `--watch` repeats it. The token (policy `keybroker-intake`) comes
from `--token`, `KEYBROKER_TOKEN`, or dev mode's state file with `--dev`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from broker.health.status import KeyStatus

EXIT_OK, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 2, 3


class StatusError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def dev_connection(state_file: Path) -> tuple[str, str]:
    try:
        state = json.loads(state_file.read_text())
        return str(state["broker_url"]), str(state["intake_token"])
    except (OSError, ValueError, KeyError):
        raise StatusError(f"no running `keybroker dev` state in {state_file}", EXIT_USAGE) from None


def fetch(broker_url: str, token: str, filters: dict[str, str], limit: int) -> dict[str, Any]:
    params = {k: v for k, v in filters.items() if v} | {"limit": str(limit)}
    try:
        answer = requests.get(
            f"{broker_url.rstrip('/')}/v1/keys",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except requests.RequestException as exc:
        raise StatusError(
            f"cannot reach the broker ({type(exc).__name__})", EXIT_UNAVAILABLE
        ) from None
    if answer.status_code != 200:
        try:
            message = answer.json().get("message", "")
        except ValueError:
            message = ""
        code = EXIT_UNAVAILABLE if answer.status_code >= 500 else EXIT_USAGE
        raise StatusError(f"the broker answered {answer.status_code}: {message}", code)
    return dict(answer.json())


def render_table(listing: dict[str, Any]) -> str:
    counts: dict[str, dict[str, int]] = listing["counts"]
    exchanges = sorted({e for by in counts.values() for e in by})
    rows = [["status", *exchanges, "total"]]
    for status in KeyStatus:
        by = counts.get(status.value, {})
        if by:
            rows.append(
                [status.value, *(str(by.get(e, 0)) for e in exchanges), str(sum(by.values()))]
            )
    total = sum(sum(by.values()) for by in counts.values())
    rows.append(
        [
            "all",
            *(str(sum(counts.get(s, {}).get(e, 0) for s in counts)) for e in exchanges),
            str(total),
        ]
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    keys = [k for k in listing["keys"] if k["health"]["status"] != KeyStatus.CONNECTED]
    if keys:
        lines += ["", "keys not connected:"]
        for k in keys:
            h = k["health"]
            detail = f" ({h['detail']})" if h["detail"] else ""
            stop = "  STOP" if h["stop"] else ""
            lines.append(
                f"  {k['account']}/{k['exchange']}/{k['role']}: {h['status']}{detail}{stop}"
            )
        if listing["total"] > len(listing["keys"]):
            lines.append(f"  ... {listing['total'] - len(listing['keys'])} more (raise --limit)")
    if not listing["index_complete"]:
        lines.append("(the broker is still rebuilding its index: counts may be partial)")
    return "\n".join(lines)


def run_status(
    broker_url: str,
    token: str,
    filters: dict[str, str],
    *,
    as_json: bool,
    watch: float | None,
    repeat: int,
    limit: int,
    echo: Callable[[str], None],
) -> int:
    shown = 0
    while True:
        listing = fetch(broker_url, token, filters, limit)
        text = json.dumps(listing, indent=2) if as_json else render_table(listing)
        if watch and shown and not as_json:
            echo("\x1b[2J\x1b[H" + time.strftime("%H:%M:%S"))  # clear, then a timestamp
        echo(text)
        shown += 1
        if not watch or (repeat and shown >= repeat):
            return EXIT_OK
        time.sleep(watch)
