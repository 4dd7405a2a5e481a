"""Initialisation and the seal: Shamir unseal keys, or auto-unseal with recovery keys.

DOC api-docs/system/init.mdx, unseal.mdx, seal-status.mdx, seal.mdx (docs/facts/vault.md
§4.5, §6): `PUT sys/init` once; with Shamir, `secret_threshold` distinct key shares
unseal; with auto-unseal (`recovery_shares`), the server unseals itself and the
recovery keys cannot unseal it.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from keybroker_dev.devvault.errors import bad_request
from keybroker_dev.devvault.params import as_int

VERSION = "1.21.0"  # the Vault version whose documented behaviour devvault follows


@dataclass
class SealState:
    auto_unseal: bool = False
    initialized: bool = False
    sealed: bool = True
    shares: int = 1
    threshold: int = 1
    keys: list[bytes] = field(default_factory=list)
    progress: list[bytes] = field(default_factory=list)
    nonce: str = ""

    def initialize(self, data: dict[str, Any]) -> dict[str, Any]:
        """`PUT sys/init`; returns keys (hex and base64), root token added by the caller."""
        if self.initialized:
            raise bad_request("Vault is already initialized")
        if self.auto_unseal:
            shares = as_int(data, "recovery_shares", 5)
            threshold = as_int(data, "recovery_threshold", 3)
        else:
            shares = as_int(data, "secret_shares", 0)
            threshold = as_int(data, "secret_threshold", 0)
            stored = as_int(data, "stored_shares", 0)
            if stored and stored != shares:
                raise bad_request("stored_shares must equal secret_shares")
        if shares < 1 or threshold < 1 or threshold > shares:
            raise bad_request("invalid seal configuration: threshold must be between 1 and shares")
        if threshold == 1 and shares > 1:
            raise bad_request(
                "invalid seal configuration: threshold must be greater than one for multiple shares"
            )
        keys = [secrets.token_bytes(32) for _ in range(shares)]
        self.shares, self.threshold, self.initialized = shares, threshold, True
        hex_keys = [k.hex() for k in keys]
        b64_keys = [base64.b64encode(k).decode() for k in keys]
        if self.auto_unseal:
            self.sealed = False
            return {
                "keys": [],
                "keys_base64": [],
                "recovery_keys": hex_keys,
                "recovery_keys_base64": b64_keys,
            }
        self.keys = keys
        self.sealed = True
        return {"keys": hex_keys, "keys_base64": b64_keys}

    def unseal(self, data: dict[str, Any]) -> None:
        if not self.initialized:
            raise bad_request("Vault is not initialized")
        if data.get("reset"):
            self.progress.clear()
            return
        raw = data.get("key")
        if not isinstance(raw, str) or not raw:
            raise bad_request(
                "'key' must be specified in request body as JSON, or 'reset' set to true"
            )
        if self.auto_unseal:
            # Recovery keys never unseal (DOC init.mdx, docs/facts/vault.md §6).
            raise bad_request("cannot unseal with recovery keys when using auto-unseal")
        key = _decode_key(raw)
        if key not in self.keys:
            raise bad_request("Vault is sealed: invalid key share")
        if key not in self.progress:
            self.progress.append(key)
        if len(self.progress) >= self.threshold:
            self.sealed = False
            self.progress.clear()

    def status(self) -> dict[str, Any]:
        return {
            "type": "awskms" if self.auto_unseal else "shamir",
            "initialized": self.initialized,
            "sealed": self.sealed,
            "t": self.threshold if self.initialized else 0,
            "n": self.shares if self.initialized else 0,
            "progress": len(self.progress),
            "nonce": self.nonce,
            "version": VERSION,
            "build_date": "",
            "migration": False,
            "recovery_seal": self.auto_unseal,
            "storage_type": "inmem",
        }


def _decode_key(raw: str) -> bytes:
    try:
        return bytes.fromhex(raw)
    except ValueError:
        pass
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise bad_request("'key' must be a valid hex or base64 string") from exc
