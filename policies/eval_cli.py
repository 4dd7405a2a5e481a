"""`keybroker policy eval`: decide requests as Vault would (docs/contracts.md §5).

Single mode prints `allow` or `deny` (exit 0 / 1); any usage or input problem prints
one clear line on stderr and exits 2. Batch mode reads JSON lines
`{"policies": [text, ...], "path", "operation", "params"?, "wrap_ttl_seconds"?}` and
writes exactly one JSON line per input line, `{"allowed": bool}` or `{"error": str}`;
a bad line never stops the stream, but a batch in which every line failed exits 2.
`--policy` files apply to every batch line, on top of the line's own `policies`.

Paths are request paths as sent to Vault's HTTP API (what follows `/v1/`). For a list
request Vault's HTTP layer appends the trailing `/` before the ACL sees the path
(http/logical.go `buildLogicalRequestNoAuth`, docs/facts/vault.md §1.3); so does this.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from policies.acl import ACL, ACLError
from policies.hcl import PolicyParseError, parse_policy
from policies.loader import load_policy_files
from policies.model import OPERATIONS, Policy

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


def request_path(path: str, operation: str) -> str:
    """The path Vault's ACL sees for an HTTP request: list requests end in `/`."""
    if operation == "list" and not path.endswith("/"):
        return path + "/"
    return path


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
    allowed = acl.allow_operation(request_path(path, operation), operation, data, ttl).allowed
    print("allow" if allowed else "deny")
    return EXIT_ALLOW if allowed else EXIT_DENY


class BatchEvaluator:
    """Answers batch lines; `base` policies (from `--policy` files) apply to every line."""

    def __init__(self, base: Sequence[Policy] = ()) -> None:
        self._base = tuple(base)
        self._acls: dict[tuple[str, ...], ACL] = {}

    def _acl(self, texts: tuple[str, ...]) -> ACL:
        acl = self._acls.get(texts)
        if acl is None:
            if len(self._acls) >= 256:  # bound the cache on long streams
                self._acls.clear()
            acl = ACL([*self._base, *(parse_policy(text) for text in texts)])
            self._acls[texts] = acl
        return acl

    def evaluate_line(self, line: str) -> dict[str, Any]:
        """One batch line -> `{"allowed": bool}` or `{"error": str}`."""
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            return {"error": f"not a JSON object: {exc.msg}"}
        if not isinstance(request, dict):
            return {"error": "not a JSON object"}
        try:
            texts = request.get("policies", [] if self._base else None)
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise EvalInputError(
                    '"policies" must be a list of policy texts (optional with --policy)'
                )
            path = request.get("path")
            if not isinstance(path, str):
                raise EvalInputError('"path" must be a string')
            operation = _check_operation(request.get("operation"))
            params = request.get("params")
            if params is not None and not isinstance(params, dict):
                raise EvalInputError('"params" must be an object')
            ttl = _check_wrap_ttl(request.get("wrap_ttl_seconds"))
            acl = self._acl(tuple(texts))
        except (EvalInputError, PolicyParseError, ACLError) as exc:
            return {"error": str(exc)}
        result = acl.allow_operation(request_path(path, operation), operation, params, ttl)
        return {"allowed": result.allowed}

    def evaluate_stream(self, lines: Iterable[str], out: IO[str]) -> tuple[int, int]:
        """Answer every line; (lines read, lines that failed)."""
        read = failed = 0
        for line in lines:
            answer = self.evaluate_line(line)
            read += 1
            failed += "error" in answer
            print(json.dumps(answer), file=out, flush=True)
        return read, failed


def evaluate_line(line: str) -> dict[str, Any]:
    """One batch line, without `--policy` files."""
    return BatchEvaluator().evaluate_line(line)


def evaluate_stream(lines: Iterable[str], out: IO[str]) -> tuple[int, int]:
    return BatchEvaluator().evaluate_stream(lines, out)


def run_batch(source: str, policy_files: Sequence[Path] = ()) -> int:
    """Evaluate JSON lines from a file (or `-` for stdin), one result line each.

    Exit 0 when at least one line was answered (or there were none), 2 when every line
    failed or the input could not be read."""
    try:
        evaluator = BatchEvaluator(load_policy_files(list(policy_files)) if policy_files else ())
    except (PolicyParseError, ACLError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot read {exc.filename}: {exc.strerror}")
    try:
        if source == "-":
            read, failed = evaluator.evaluate_stream(sys.stdin, sys.stdout)
        else:
            with open(source, encoding="utf-8") as stream:
                read, failed = evaluator.evaluate_stream(stream, sys.stdout)
    except OSError as exc:
        return _error(f"cannot read {source}: {exc.strerror}")
    except UnicodeDecodeError:
        return _error(f"cannot read {source}: not UTF-8 text")
    if read and failed == read:
        return _error(f"every one of the {read} batch line(s) failed")
    return 0
