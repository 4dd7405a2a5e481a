"""KV secrets engine version 2: versions, metadata, CAS, soft delete, destroy.

Follows DOC api-docs/secret/kv/kv-v2.mdx and CODE vault-plugin-secrets-kv
(path_data.go, path_metadata.go, path_delete.go, path_destroy.go), as summarised in
docs/facts/vault.md §3. Model only: no HTTP here; `routes_kv` maps requests onto it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.durations import go_duration, parse_duration
from keybroker_dev.devvault.errors import VaultError, bad_request, not_found
from keybroker_dev.devvault.params import as_bool, as_int

DEFAULT_MAX_VERSIONS = 10  # CODE AddVersion defaultMaxVersions
# CODE path_metadata.go validateCustomMetadata limits (docs/facts/vault.md §3).
MAX_CUSTOM_METADATA_KEYS = 64
MAX_CUSTOM_METADATA_KEY_LENGTH = 128
MAX_CUSTOM_METADATA_VALUE_LENGTH = 512


@dataclass
class Version:
    created_time: float
    data: dict[str, Any] | None
    deletion_time: float | None = None
    destroyed: bool = False

    def deleted(self, now: float) -> bool:
        return self.deletion_time is not None and self.deletion_time <= now

    def meta(self) -> dict[str, Any]:
        return {
            "created_time": rfc3339(self.created_time),
            "deletion_time": rfc3339(self.deletion_time) if self.deletion_time else "",
            "destroyed": self.destroyed,
        }


@dataclass
class KeyMetadata:
    created_time: float
    updated_time: float
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: float = 0.0
    custom_metadata: dict[str, str] | None = None
    versions: dict[int, Version] = field(default_factory=dict)


@dataclass
class KVConfig:
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": go_duration(self.delete_version_after),
        }


def _multierror(problems: list[str]) -> str:
    """Go's hashicorp/go-multierror text, which Vault returns as the error."""
    noun = "error" if len(problems) == 1 else "errors"
    return f"{len(problems)} {noun} occurred:\n" + "".join(f"\t* {p}\n" for p in problems) + "\n"


def validate_custom_metadata(raw: object) -> dict[str, str]:
    """CODE path_metadata.go validateCustomMetadata: at most 64 keys (checked first, alone),
    then every key 1..128 bytes, every value 1..512 bytes, both printable; all problems
    reported, each prefixed `custom_metadata validation failed`."""
    prefix = "custom_metadata validation failed"
    if not isinstance(raw, dict):
        raise bad_request(f"{prefix}: custom_metadata must be a map of strings")
    if len(raw) > MAX_CUSTOM_METADATA_KEYS:
        raise bad_request(
            _multierror(
                [
                    f"{prefix}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, "
                    f"provided {len(raw)}"
                ]
            )
        )
    problems: list[str] = []
    out: dict[str, str] = {}
    for key, value in raw.items():
        key, text = str(key), "" if value is None else str(value)
        quoted = json.dumps(key)  # Go %q
        key_len, value_len = len(key.encode()), len(text.encode())
        if not 0 < key_len <= MAX_CUSTOM_METADATA_KEY_LENGTH:
            problems.append(
                f"{prefix}: length of key {quoted} is {key_len} but must be "
                f"0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LENGTH}"
            )
        if not 0 < value_len <= MAX_CUSTOM_METADATA_VALUE_LENGTH:
            problems.append(
                f"{prefix}: length of value for key {quoted} is {value_len} but must be "
                f"0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LENGTH}"
            )
        if not key.isprintable():
            problems.append(f"{prefix}: key {quoted} contains unprintable characters")
        if not text.isprintable():
            problems.append(f"{prefix}: value for key {quoted} contains unprintable characters")
        out[key] = text
    if problems:
        raise bad_request(_multierror(problems))
    return out


def _versions_arg(data: dict[str, Any], message: str) -> list[int]:
    raw = data.get("versions")
    if raw in (None, "", []):
        raise bad_request(message)
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise bad_request(message)
    try:
        return [int(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise bad_request("invalid version number") from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (KV v2 PATCH, DOC kv-v2.mdx "Patch secret")."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class KVStore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.config = KVConfig()
        self.keys: dict[str, KeyMetadata] = {}

    # -- existence (decides create vs update, docs/facts/vault.md §1.3) ---------------
    def exists(self, path: str) -> bool:
        return path in self.keys

    # -- data ----------------------------------------------------------------------
    def _max_versions(self, meta: KeyMetadata) -> int:
        return max(meta.max_versions, self.config.max_versions) or DEFAULT_MAX_VERSIONS

    def _check_cas(self, meta: KeyMetadata | None, options: object) -> None:
        """CODE validateCheckAndSetOption."""
        cas_raw = options.get("cas") if isinstance(options, dict) else None
        if cas_raw is None:
            if self.config.cas_required or (meta is not None and meta.cas_required):
                raise bad_request("check-and-set parameter required for this call")
            return
        try:
            if isinstance(cas_raw, bool):
                raise ValueError
            cas = int(cas_raw)
        except (TypeError, ValueError) as exc:
            raise bad_request("error parsing check-and-set parameter") from exc
        current = meta.current_version if meta is not None else 0
        if cas != current:
            raise bad_request("check-and-set parameter did not match the current version")

    def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST data/:path -> the new version's metadata."""
        if "data" not in body or body["data"] is None:
            raise bad_request("no data provided")
        if not isinstance(body["data"], dict):
            raise bad_request("data must be a JSON object")
        meta = self.keys.get(path)
        self._check_cas(meta, body.get("options"))
        return self._add_version(path, meta, body["data"])

    def _add_version(
        self, path: str, meta: KeyMetadata | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.clock.now()
        if meta is None:
            meta = KeyMetadata(created_time=now, updated_time=now)
            self.keys[path] = meta
        number = meta.current_version + 1
        dva = meta.delete_version_after or self.config.delete_version_after
        version = Version(created_time=now, data=data, deletion_time=now + dva if dva else None)
        meta.versions[number] = version
        meta.current_version = number
        meta.updated_time = now
        if meta.oldest_version == 0:
            meta.oldest_version = number
        # Versions beyond max_versions are removed permanently, oldest first.
        while len(meta.versions) > self._max_versions(meta):
            oldest = min(meta.versions)
            del meta.versions[oldest]
            meta.oldest_version = min(meta.versions)
        return self._version_view(meta, number)

    def _version_view(self, meta: KeyMetadata, number: int) -> dict[str, Any]:
        return {
            **meta.versions[number].meta(),
            "version": number,
            "custom_metadata": dict(meta.custom_metadata) if meta.custom_metadata else None,
        }

    def read(self, path: str, version: int = 0) -> dict[str, Any]:
        """GET data/:path; soft-deleted or destroyed -> 404 with the metadata body."""
        meta = self.keys.get(path)
        if meta is None:
            raise not_found()
        number = version or meta.current_version
        entry = meta.versions.get(number)
        if entry is None:
            raise not_found()
        view = {"data": None, "metadata": self._version_view(meta, number)}
        if entry.destroyed or entry.deleted(self.clock.now()):
            # DOC kv-v2 / CODE logical.RespondWithStatusCode: 404 whose body is the
            # normal response with data=null (docs/facts/vault.md §3).
            raise VaultError(404, body={"data": view})
        view["data"] = entry.data
        return view

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH data/:path: JSON-merge into the current version, as a new version.

        CODE path_data.go pathDataPatch order: no data -> 400; unknown key -> 404; CAS;
        deleted or destroyed current version -> 404 whose data is that version's metadata."""
        if not isinstance(body.get("data"), dict):
            raise bad_request("no data provided")
        meta = self.keys.get(path)
        if meta is None:
            raise not_found()
        self._check_cas(meta, body.get("options"))
        current = meta.versions.get(meta.current_version)
        if current is None:
            raise not_found()
        if current.destroyed or current.deleted(self.clock.now()):
            raise VaultError(404, body={"data": self._version_view(meta, meta.current_version)})
        return self._add_version(path, meta, merge_patch(current.data, body["data"]))

    def delete_latest(self, path: str) -> None:
        meta = self.keys.get(path)
        if meta is None:
            return
        entry = meta.versions.get(meta.current_version)
        if entry is not None and not entry.destroyed and not entry.deleted(self.clock.now()):
            entry.deletion_time = self.clock.now()
            meta.updated_time = self.clock.now()

    def delete_versions(self, path: str, data: dict[str, Any]) -> None:
        versions = _versions_arg(data, "No version number provided")
        meta = self.keys.get(path)
        if meta is None:
            return
        now = self.clock.now()
        for number in versions:
            entry = meta.versions.get(number)
            if entry is not None and not entry.destroyed and not entry.deleted(now):
                entry.deletion_time = now
        meta.updated_time = now

    def undelete(self, path: str, data: dict[str, Any]) -> None:
        versions = _versions_arg(data, "No version number provided")
        meta = self.keys.get(path)
        if meta is None:
            return
        for number in versions:
            entry = meta.versions.get(number)
            if entry is not None and not entry.destroyed:
                entry.deletion_time = None
        meta.updated_time = self.clock.now()

    def destroy(self, path: str, data: dict[str, Any]) -> None:
        versions = _versions_arg(data, "no version number provided")
        meta = self.keys.get(path)
        if meta is None:
            return
        for number in versions:
            entry = meta.versions.get(number)
            if entry is not None:
                entry.destroyed = True
                entry.data = None
        meta.updated_time = self.clock.now()

    # -- metadata ------------------------------------------------------------------
    def read_metadata(self, path: str) -> dict[str, Any]:
        meta = self.keys.get(path)
        if meta is None:
            raise not_found()
        return {
            "cas_required": meta.cas_required,
            "created_time": rfc3339(meta.created_time),
            "current_version": meta.current_version,
            "delete_version_after": go_duration(meta.delete_version_after),
            "max_versions": meta.max_versions,
            "oldest_version": meta.oldest_version,
            "updated_time": rfc3339(meta.updated_time),
            "custom_metadata": dict(meta.custom_metadata) if meta.custom_metadata else None,
            "versions": {str(n): v.meta() for n, v in sorted(meta.versions.items())},
        }

    def write_metadata(self, path: str, data: dict[str, Any], *, patch: bool = False) -> list[str]:
        """POST metadata/:path (replaces custom_metadata) or PATCH (JSON-merges it, a null
        value removing a key, a null map removing them all); returns warnings. CODE
        path_metadata.go: a POST with none of the four fields changes nothing (not even
        creating the key); PATCH needs the key."""
        fields = ("max_versions", "cas_required", "delete_version_after", "custom_metadata")
        if not patch and not any(k in data for k in fields):
            return []
        max_versions = as_int(data, "max_versions", -1)
        if "max_versions" in data and max_versions < 0:
            raise bad_request("max_versions cannot be negative")
        cas_required = as_bool(data, "cas_required", False) if "cas_required" in data else None
        dva = (
            parse_duration(data["delete_version_after"], "delete_version_after")
            if data.get("delete_version_after") not in (None, "")
            else None
        )
        custom_raw = data.get("custom_metadata")
        custom: dict[str, str] | None = None
        removed: set[str] = set()
        # In a PATCH, a null map unsets the whole field (docs/facts/vault.md §3).
        cleared = patch and "custom_metadata" in data and custom_raw is None
        if custom_raw is not None:
            if patch and isinstance(custom_raw, dict):
                removed = {str(k) for k, v in custom_raw.items() if v is None}
                custom_raw = {k: v for k, v in custom_raw.items() if v is not None}
            custom = validate_custom_metadata(custom_raw)
        meta = self.keys.get(path)
        if meta is None:
            if patch:
                raise not_found()
            now = self.clock.now()
            meta = KeyMetadata(created_time=now, updated_time=now)
            self.keys[path] = meta
        warnings: list[str] = []
        if cas_required is False and self.config.cas_required:
            warnings.append(
                '"cas_required" set to false, but is mandated by backend config. '
                "This value will be ignored."
            )
        if max_versions >= 0:
            meta.max_versions = max_versions
        if cas_required is not None:
            meta.cas_required = cas_required
        if dva is not None:
            meta.delete_version_after = dva
        if cleared:
            meta.custom_metadata = {}
        if custom is not None:
            if patch:
                merged = {**(meta.custom_metadata or {}), **custom}
                meta.custom_metadata = {k: v for k, v in merged.items() if k not in removed}
            else:
                meta.custom_metadata = custom
        return warnings

    def delete_metadata(self, path: str) -> None:
        self.keys.pop(path, None)

    def list(self, prefix: str) -> list[str]:
        """LIST metadata/:prefix -> immediate children, folders with a trailing `/`."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        out: set[str] = set()
        for key in self.keys:
            if key.startswith(prefix):
                rest = key[len(prefix) :]
                head, sep, _ = rest.partition("/")
                out.add(head + "/" if sep else head)
        if not out:
            raise not_found()
        return sorted(out)

    def write_config(self, data: dict[str, Any]) -> None:
        if "max_versions" in data:
            self.config.max_versions = as_int(data, "max_versions", 0)
        if "cas_required" in data:
            self.config.cas_required = as_bool(data, "cas_required", False)
        if data.get("delete_version_after") not in (None, ""):
            self.config.delete_version_after = parse_duration(
                data["delete_version_after"], "delete_version_after"
            )
