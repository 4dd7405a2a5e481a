"""Pure parts of the broker: key masking, metadata slots, TTL parsing, audit lines."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from datetime import UTC, datetime

import pytest

from broker.audit import AuditLog
from broker.config import Settings
from broker.exchanges.base import mask_api_key
from broker.keystore import KeyFacts
from broker.reasons import Permissions, ReasonCode
from broker.site_tokens import InvalidTTL, parse_ttl


@pytest.mark.parametrize(
    ("api_key", "masked"),
    [
        ("abcdefghijklmnopqrstuvwxyz012345", "abcd...2345"),
        ("abcdefghijklmnop", "abcd...mnop"),
        ("abcdefgh", "ab...gh"),
        ("abcdefghi", "ab...hi"),
        ("abc", "****"),
    ],
)
def test_masking_shows_at_most_4_plus_4_and_never_half_the_key(api_key: str, masked: str) -> None:
    assert mask_api_key(api_key) == masked
    shown = len(masked.replace("...", "").replace("*", ""))
    assert shown <= 8 and shown <= len(api_key) // 2


def _facts(**changes: object) -> KeyFacts:
    values: dict[str, object] = {
        "name": "Main key",
        "api_key_masked": "abcd...wxyz",
        "status": "active",
        "checked_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "permissions": Permissions(read=True, spot_trade=True),
        "ip_restricted": True,
        "ip_whitelist": ["203.0.113.10"],
        "expires_at": None,
        "warnings": (ReasonCode.KEY_EXPIRING,),
    }
    values.update(changes)
    return KeyFacts(**values)  # type: ignore[arg-type]


def test_facts_round_trip_through_their_version_slot() -> None:
    facts = _facts()
    slot = facts.to_slot(3)
    assert set(slot) >= {"v3.name", "v3.permissions", "v3.ip_whitelist"}
    assert slot["v3.permissions"] == "read,spot_trade"
    assert KeyFacts.from_slot(slot, 3) == facts
    assert KeyFacts.from_slot(slot, 4) is None  # another version's slot is never believed


def test_slot_values_fit_kv_custom_metadata_limits() -> None:
    # KV v2: at most 64 keys, values 1..512 bytes (docs/facts/vault.md §3).
    many_ips = [f"10.0.{i // 256}.{i % 256}" for i in range(200)]
    slot = _facts(ip_whitelist=many_ips, ip_restricted=None).to_slot(1, "txn")
    assert len(slot) * 2 <= 64
    assert all(1 <= len(v.encode()) <= 512 for v in slot.values())
    restored = KeyFacts.from_slot(slot, 1)
    assert restored is not None and restored.ip_whitelist is not None
    assert restored.ip_whitelist[-1] == "..." and restored.ip_restricted is None


def test_ttl_parsing_against_the_role_maximum() -> None:
    assert parse_ttl(None, default=300, maximum=900, what="ttl") == 300
    assert parse_ttl("15m", default=300, maximum=900, what="ttl") == 900
    assert parse_ttl(60, default=300, maximum=900, what="ttl") == 60
    for bad in ("16m", "1h", "0s", "soon", "-5", ""):
        with pytest.raises(InvalidTTL):
            parse_ttl(bad, default=300, maximum=900, what="ttl")


def test_audit_lines_are_json_and_identify_keys_by_hmac() -> None:
    stream = io.StringIO()
    audit = AuditLog(Settings(audit_hmac_key="k" * 32), stream=stream)
    key_id = audit.fingerprint("THE-API-KEY")
    audit.emit("key.accepted", key_id=key_id, account="a")
    line = json.loads(stream.getvalue())
    assert line["event"] == "key.accepted" and line["key_id"] == key_id
    assert "THE-API-KEY" not in stream.getvalue()
    # Same HMAC key: same id; another key: another id.
    again = AuditLog(Settings(audit_hmac_key="k" * 32), stream=io.StringIO())
    other = AuditLog(Settings(audit_hmac_key="x" * 32), stream=io.StringIO())
    assert again.fingerprint("THE-API-KEY") == key_id != other.fingerprint("THE-API-KEY")
    # The documented id: the first 128 bits of HMAC-SHA256 under the audit key, stable
    # across calls (the keyed state is copied, never updated in place).
    expected = hmac.new(b"k" * 32, b"THE-API-KEY", hashlib.sha256).hexdigest()[:32]
    assert key_id == expected == audit.fingerprint("THE-API-KEY")
    assert audit.fingerprint("other") != key_id


def test_audit_file_is_created_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit" / "broker.jsonl"
    audit = AuditLog(Settings(audit_log=path))
    audit.emit("auth.failed", status=401)
    audit.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["status"] == 401
