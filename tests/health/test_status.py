"""The pure parts: status from a check outcome, the stop list, the index, signatures."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from broker.config import Settings
from broker.health.index import Entry, HealthIndex
from broker.health.status import (
    DEFAULT_STOP_ON,
    Health,
    KeyStatus,
    from_check,
    parse_stop_on,
    stale,
    stops,
)
from broker.reasons import ReasonCode as C
from broker.webhooks import signature, verify_signature

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("accepted", "errors", "expires", "status", "detail"),
    [
        (True, [], None, KeyStatus.CONNECTED, ""),
        (True, [], NOW + timedelta(days=30), KeyStatus.CONNECTED, ""),
        (True, [], NOW + timedelta(days=6, hours=3), KeyStatus.EXPIRES_SOON, "6d"),
        (False, [C.KEY_EXPIRED], NOW - timedelta(days=1), KeyStatus.EXPIRED, ""),
        (False, [C.WITHDRAW_ENABLED], None, KeyStatus.RIGHTS_CHANGED, "withdraw"),
        (
            False,
            [C.WITHDRAW_ENABLED, C.TRANSFER_ENABLED],
            None,
            KeyStatus.RIGHTS_CHANGED,
            "withdraw,transfer",
        ),
        (False, [C.TRADE_ENABLED], None, KeyStatus.RIGHTS_CHANGED, "trade"),
        (False, [C.INVALID_CREDENTIALS], None, KeyStatus.REVOKED_AT_EXCHANGE, ""),
        (False, [C.IP_NOT_ALLOWED], None, KeyStatus.IP_NOT_ALLOWED, ""),
        (False, [C.IP_WHITELIST_MISMATCH], None, KeyStatus.IP_NOT_ALLOWED, ""),
        (False, [C.EXCHANGE_UNAVAILABLE], None, KeyStatus.TEMPORARILY_UNAVAILABLE, ""),
        (False, [C.RATE_LIMITED], None, KeyStatus.TEMPORARILY_UNAVAILABLE, ""),
        # Retryable says nothing about the key; a refusal outranks a changed right.
        (False, [C.WITHDRAW_ENABLED, C.IP_NOT_ALLOWED], None, KeyStatus.IP_NOT_ALLOWED, ""),
    ],
)
def test_status_from_a_check(
    accepted: bool, errors: list[C], expires: datetime | None, status: KeyStatus, detail: str
) -> None:
    health = from_check(accepted, errors, expires, NOW)
    assert (health.status, health.detail) == (status, detail)


def test_stale_is_twice_the_schedule() -> None:
    assert not stale(NOW - timedelta(hours=11), NOW, 6 * 3600)
    assert stale(NOW - timedelta(hours=12, seconds=1), NOW, 6 * 3600)


def test_stop_list_defaults_and_per_status_configuration() -> None:
    withdraw = Health(KeyStatus.RIGHTS_CHANGED, rights=("withdraw",))
    futures = Health(KeyStatus.RIGHTS_CHANGED, rights=("futures",))
    revoked = Health(KeyStatus.REVOKED_AT_EXCHANGE)
    assert stops(withdraw, DEFAULT_STOP_ON) and not stops(futures, DEFAULT_STOP_ON)
    assert not stops(revoked, DEFAULT_STOP_ON)
    custom = parse_stop_on(["rights_changed", "revoked_at_exchange"])
    assert stops(futures, custom) and stops(revoked, custom)
    for typo in (["rights_chnged"], ["expired:withdraw"], ["rights_changed:everything"]):
        with pytest.raises(ValueError):
            parse_stop_on(typo)
    assert Settings(health_stop_on="expired").health_stop_on == ["expired"]
    with pytest.raises(ValueError):
        Settings(webhook_urls="https://hooks.example/k")  # a URL without the HMAC key


def _entry(account: str, exchange: str, status: KeyStatus) -> Entry:
    return Entry(account, exchange, "robot", 1, Health(status), NOW, NOW)


def test_index_queries_and_counts() -> None:
    changes: list[tuple[str, str, int]] = []
    index = HealthIndex(on_count=lambda s, e, d: changes.append((s, e, d)))
    index.put(_entry("b", "okx", KeyStatus.CONNECTED))
    index.put(_entry("a", "okx", KeyStatus.CONNECTED))
    index.put(_entry("a", "binance", KeyStatus.EXPIRED))
    index.put(_entry("b", "okx", KeyStatus.IP_NOT_ALLOWED))  # a change of one key
    found, total = index.query(status=KeyStatus.CONNECTED)
    assert [(e.account, e.exchange) for e in found] == [("a", "okx")] and total == 1
    found, total = index.query(exchange="okx", limit=1)
    assert total == 2 and len(found) == 1
    assert index.counts() == {
        "connected": {"okx": 1},
        "expired": {"binance": 1},
        "ip_not_allowed": {"okx": 1},
    }
    index.remove(("a", "binance", "robot"))
    assert "expired" not in index.counts()
    assert sum(d for s, e, d in changes if s == "connected") == 1


def test_index_replace_and_discard_only_the_entry_they_saw() -> None:
    """A resync read Vault while this process wrote: its older view must not win."""
    index = HealthIndex()
    seen = _entry("a", "okx", KeyStatus.CONNECTED)
    index.put(seen)
    newer = _entry("a", "okx", KeyStatus.EXPIRED)  # a report applied meanwhile
    index.put(newer)
    from_vault = _entry("a", "okx", KeyStatus.IP_NOT_ALLOWED)
    assert index.replace(seen, from_vault) is False
    assert index.discard(seen) is False
    assert index.get(("a", "okx", "robot")) is newer
    assert index.replace(newer, from_vault) is True
    assert index.counts() == {"ip_not_allowed": {"okx": 1}}
    assert index.replace(None, _entry("b", "okx", KeyStatus.CONNECTED)) is True
    assert index.replace(None, _entry("b", "okx", KeyStatus.EXPIRED)) is False
    assert index.discard(from_vault) is True and index.get(("a", "okx", "robot")) is None


def test_webhook_signatures() -> None:
    body = b'{"status":"expired"}'
    now = int(time.time())
    header = signature(b"k", now, body)
    assert verify_signature(b"k", header, body)
    assert not verify_signature(b"k", header, body + b" ")
    assert not verify_signature(b"k", signature(b"k", now - 3600, body), body)  # replayed
    assert not verify_signature(b"k", "garbage", body)
