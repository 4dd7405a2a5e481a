"""`keybroker policy eval`: decide requests as Vault would (docs/contracts.md §5).

Single mode prints `allow` or `deny` (exit 0 / 1); any usage or input problem prints
one clear line on stderr and exits 2. Batch mode reads JSON lines
`{"policies": [text, ...], "path", "operation", "params"?, "wrap_ttl_seconds"?}` and
writes exactly one JSON line per input line, `{"allowed": bool}` or `{"error": str}`;
a bad line never stops the stream.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from policies.acl import ACL, ACLError
from policies.hcl import PolicyParseError, parse_policy
from policies.loader import load_policy_files
from policies.model import OPERATIONS

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_ERROR = 2


class EvalInputError(ValueError):
    """A request that cannot be evaluated (bad operation, parameter, TTL, ...)."""


def _check_operation(op: Any) -> str:
    if not isinstance(op, str) or op not in OPERATIONS:
        raise EvalInputError(f"unknown operation {op!r}; use one of: {', '.join(OPERATIONS)}")
    return op


def _check_wrap_ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalInputError("wrap TTL must be a number of seconds")
    if value < 0:
        raise EvalInputError("wrap TTL cannot be negative")
    return float(value)


def parse_param_options(options: Iterable[str]) -> dict[str, Any]:
    """`--param KEY=JSON` options -> request data (the last of a repeated key wins)."""
    data: dict[str, Any] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key:
            # The option is not echoed: it may be a value someone meant to keep private.
            raise EvalInputError("every --param must be KEY=JSON (e.g. --param ttl=300)")
        try:
            data[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"--param {key}: value is not valid JSON ({exc.msg})") from None
    return data


def _error(message: str) -> int:
    print(f"keybroker policy eval: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def run_single(
    policy_files: list[Path],
    path: str | None,
    op: str | None,
    params: list[str],
    wrap_ttl: int | None,
) -> int:
    """Evaluate one request against the policy files; print allow/deny."""
    if not policy_files:
        return _error("give at least one --policy FILE")
    if path is None:
        return _error("--path is required")
    if op is None:
        return _error("--op is required")
    try:
        operation = _check_operation(op)
        data = parse_param_options(params)
        ttl = _check_wrap_ttl(wrap_ttl)
        acl = ACL(load_policy_files(policy_files))
    except (EvalInputError, PolicyParseError, ACLError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot read {exc.filename}: {exc.strerror}")
    allowed = acl.allow_operation(path, operation, data, ttl).allowed
    print("allow" if allowed else "deny")
    return EXIT_ALLOW if allowed else EXIT_DENY


@lru_cache(maxsize=256)
def _compiled(texts: tuple[str, ...]) -> ACL:
    return ACL([parse_policy(text) for text in texts])


def evaluate_line(line: str) -> dict[str, Any]:
    """One batch line -> `{"allowed": bool}` or `{"error": str}`."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"not a JSON object: {exc.msg}"}
    if not isinstance(request, dict):
        return {"error": "not a JSON object"}
    try:
        texts = request.get("policies")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise EvalInputError('"policies" must be a list of policy texts')
        path = request.get("path")
        if not isinstance(path, str):
            raise EvalInputError('"path" must be a string')
        operation = _check_operation(request.get("operation"))
        params = request.get("params")
        if params is not None and not isinstance(params, dict):
            raise EvalInputError('"params" must be an object')
        ttl = _check_wrap_ttl(request.get("wrap_ttl_seconds"))
        acl = _compiled(tuple(texts))
    except (EvalInputError, PolicyParseError, ACLError) as exc:
        return {"error": str(exc)}
    return {"allowed": acl.allow_operation(path, operation, params, ttl).allowed}


def evaluate_stream(lines: Iterable[str], out: IO[str]) -> None:
    for line in lines:
        print(json.dumps(evaluate_line(line)), file=out, flush=True)


def run_batch(source: str) -> int:
    """Evaluate JSON lines from a file (or `-` for stdin), one result line each."""
    if source == "-":
        evaluate_stream(sys.stdin, sys.stdout)
        return 0
    try:
        with open(source, encoding="utf-8") as stream:
            evaluate_stream(stream, sys.stdout)
    except OSError as exc:
        return _error(f"cannot read {source}: {exc.strerror}")
    except UnicodeDecodeError:
        return _error(f"cannot read {source}: not UTF-8 text")
    return 0
