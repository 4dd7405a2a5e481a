"""Audit devices: the `file` type, writing one Vault-style JSON object per line.

DOC audit/file.mdx, audit/index.mdx, api-docs/system/audit.mdx, audit-hash.mdx
(docs/facts/vault.md §4.5): each request is logged as a `request` entry before it is
served and a `response` entry after; every string in request and response data, and
client tokens and accessors, are replaced by `hmac-sha256:<hex>` keyed with a
per-device salt (`sys/audit-hash/:path` computes the same hash), unless `log_raw`.
File options: `file_path` (also `stdout`, `discard`), `mode` (default 0600;
executable modes are refused since CVE-2025-6000), `log_raw`, `hmac_accessor`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from keybroker_dev.devvault.errors import VaultError, bad_request
from keybroker_dev.devvault.params import as_bool, as_str

HMAC_PREFIX = "hmac-sha256:"


@dataclass
class FileAuditDevice:
    path: str  # "file/"
    description: str
    options: dict[str, str]
    target: Path | None  # None for stdout/discard
    mode: int
    log_raw: bool = False
    hmac_accessor: bool = True
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hash(self, value: str) -> str:
        digest = hmac.new(self.salt, value.encode(), hashlib.sha256).hexdigest()
        return HMAC_PREFIX + digest

    def hash_structure(self, value: Any) -> Any:
        """Every string in maps and lists is HMAC'd; other scalars are kept."""
        if self.log_raw:
            return value
        if isinstance(value, str):
            return self.hash(value)
        if isinstance(value, dict):
            return {k: self.hash_structure(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.hash_structure(v) for v in value]
        return value

    def write(self, entry: dict[str, Any]) -> None:
        if self.options.get("file_path") == "discard":
            return
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        if self.target is None:
            stream: TextIO = sys.stdout
            stream.write(line)
            stream.flush()
            return
        with self._lock:
            fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.mode)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "file",
            "description": self.description,
            "options": dict(self.options),
            "local": False,
            "path": self.path,
        }


class AuditBroker:
    def __init__(self, audit_dir: Path | None) -> None:
        self.audit_dir = audit_dir
        self.devices: dict[str, FileAuditDevice] = {}

    def enable(self, path: str, data: dict[str, Any]) -> None:
        path = path.strip("/") + "/"
        if path in self.devices:
            raise bad_request(f"path already in use: {path}")
        device_type = as_str(data, "type")
        if device_type != "file":
            raise bad_request(f"unknown backend type: {device_type!r} (devvault has 'file')")
        options = {str(k): str(v) for k, v in (data.get("options") or {}).items()}
        file_path = options.get("file_path") or options.get("path")
        if not file_path:
            raise bad_request("file_path is required")
        options["file_path"] = file_path
        mode_text = options.get("mode", "0600")
        try:
            mode = int(mode_text, 8)
        except ValueError as exc:
            raise bad_request(f"invalid mode {mode_text!r}") from exc
        if mode & 0o111:
            raise bad_request(
                f"file mode {mode_text} is executable; audit files cannot be executable"
            )
        target: Path | None = None
        if file_path not in ("stdout", "discard"):
            target = self._resolve(file_path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode))
            except OSError as exc:
                raise bad_request(
                    f"sanity check failed; unable to open {file_path!r} for writing"
                ) from exc
        self.devices[path] = FileAuditDevice(
            path=path,
            description=as_str(data, "description"),
            options=options,
            target=target,
            mode=mode,
            log_raw=as_bool(options, "log_raw", False),
            hmac_accessor=as_bool(options, "hmac_accessor", True),
        )

    def _resolve(self, file_path: str) -> Path:
        """With an `audit_dir`, every file_path (e.g. /vault/logs/audit.log) lands inside it."""
        if self.audit_dir is None:
            return Path(file_path)
        return self.audit_dir / file_path.lstrip("/")

    def disable(self, path: str) -> None:
        self.devices.pop(path.strip("/") + "/", None)

    def audit_hash(self, path: str, value: str) -> str:
        device = self.devices.get(path.strip("/") + "/")
        if device is None:
            raise bad_request("unknown audit backend")
        return device.hash(value)

    def log(self, entry_for: Any) -> None:
        """Write one entry per device; `entry_for(device)` builds it with that device's hashes.

        DOC audit/index.mdx: if no enabled device can record a request, Vault refuses it.
        """
        if not self.devices:
            return
        failures = 0
        for device in list(self.devices.values()):
            try:
                device.write(entry_for(device))
            except OSError:
                failures += 1
        if failures == len(self.devices):
            raise VaultError(500, "internal error: no audit device could record the request")
