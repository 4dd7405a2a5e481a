"""The pure parts of durable webhooks: the record's round trip through custom_metadata,
Vault's limits, damaged records, and the start-up replay's bounds and progress log."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import Any

import pytest

from broker.audit import AuditLog
from broker.config import Settings
from broker.webhook_records import (
    DamagedRecord,
    RecordTooLarge,
    WebhookRecord,
    WebhookRecords,
    url_id,
)
from broker.webhooks import REPLAY_CONCURRENCY, WebhookSender, encode

EVENT = {
    "id": "0123456789abcdef0123456789abcdef",
    "event": "key.status_changed",
    "account": "alice",
    "exchange": "okx",
    "role": "robot",
    "version": 3,
    "status": "rights_changed",
    "detail": "",
    "previous": "connected",
    "stop": True,
    "changed_at": "2026-12-04T22:00:00+00:00",
}


def test_a_record_gives_back_the_same_body_byte_for_byte() -> None:
    record = WebhookRecord(EVENT, 1_780_000_000.5, frozenset({"ab" * 8}))
    custom = record.to_metadata()
    assert custom["event.detail"] == '""'  # Vault refuses empty values; JSON text is not
    assert custom["event.stop"] == "true" and custom["event.version"] == "3"
    assert all(0 < len(v.encode()) <= 512 and v.isprintable() for v in custom.values())
    back = WebhookRecord.from_metadata(EVENT["id"], custom)
    assert encode(back.body) == encode(EVENT)
    assert (back.created_at, back.delivered) == (record.created_at, record.delivered)


def test_an_event_beyond_vaults_limits_is_refused_before_vault() -> None:
    with pytest.raises(RecordTooLarge):
        WebhookRecord({**EVENT, "detail": "x" * 600}, time.time()).to_metadata()
    with pytest.raises(RecordTooLarge):
        WebhookRecord({**EVENT, **{f"f{i}": 1 for i in range(70)}}, time.time()).to_metadata()


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c.pop("webhook.created_at"),
        lambda c: c.update({"webhook.created_at": "yesterday"}),
        lambda c: c.update({"event.version": "{not json"}),
        lambda c: c.update({"event.id": '"another-id"'}),  # not the entry's name
    ],
)
def test_a_damaged_record_is_refused(damage: Any) -> None:
    custom = WebhookRecord(EVENT, time.time()).to_metadata()
    damage(custom)
    with pytest.raises(DamagedRecord):
        WebhookRecord.from_metadata(EVENT["id"], custom)


def test_an_event_id_that_cannot_name_one_entry_is_refused() -> None:
    records = WebhookRecords(session=None, mount="exchange-keys")  # type: ignore[arg-type]
    for bad in ("../site/alice/okx", "a/b", "", "x" * 129):
        with pytest.raises(ValueError):
            records._path(bad)


def test_url_ids_hide_the_url_and_depend_on_the_secret() -> None:
    url = "https://hooks.example/T0/B0/token-in-the-path"
    assert url_id(b"s1", url) != url_id(b"s2", url)
    assert len(url_id(b"s1", url)) == 16 and "token" not in url_id(b"s1", url)


class _FakeRecords:
    """WebhookRecords in memory, counting concurrent reads."""

    def __init__(self, records: dict[str, dict[str, str]]) -> None:
        self.custom = records
        self.reading = 0
        self.most = 0
        self.deleted: list[str] = []

    async def names(self) -> list[str]:
        return list(self.custom)

    async def read(self, name: str) -> WebhookRecord | None:
        self.reading += 1
        self.most = max(self.most, self.reading)
        await asyncio.sleep(0.001)
        self.reading -= 1
        return WebhookRecord.from_metadata(name, self.custom[name])

    async def put(self, record: WebhookRecord) -> None:
        self.custom[record.event_id] = record.to_metadata()

    async def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.custom.pop(name, None)


def test_replay_resends_young_records_abandons_old_ones_and_logs_progress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = time.time()
    young = {f"y{i:03}": now - 10 for i in range(40)}
    old = {f"o{i:03}": now - 7200 for i in range(5)}
    custom = {
        name: WebhookRecord({**EVENT, "id": name}, at).to_metadata()
        for name, at in (young | old).items()
    }
    custom["bad"] = {"event.id": '"bad"'}  # no creation time
    fake = _FakeRecords(custom)
    stream = io.StringIO()
    sender = WebhookSender(
        ["http://127.0.0.1:9/hook"],
        "whsec",
        [],
        AuditLog(Settings(), stream=stream),
        records=fake,  # type: ignore[arg-type]
        max_age=3600,
    )
    posted: list[str] = []

    async def post(url: str, raw: bytes, event_id: str) -> int:
        posted.append(event_id)
        return 204

    sender._post = post  # type: ignore[method-assign]

    async def run() -> Any:
        summary = await sender.replay(list(custom))
        while sender._tasks:
            await asyncio.gather(*list(sender._tasks))
        return summary

    with caplog.at_level(logging.INFO, logger="keybroker.webhooks"):
        summary = asyncio.run(run())
    assert (summary.pending, summary.resent, summary.abandoned, summary.damaged) == (46, 40, 5, 1)
    assert sorted(posted) == sorted(young)
    assert sorted(fake.deleted) == sorted([*young, *old])  # delivered, or given up
    assert list(fake.custom) == ["bad"]  # left for an operator
    assert 1 < fake.most <= REPLAY_CONCURRENCY  # concurrent, and bounded
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "webhook replay: 46 pending event(s) from earlier broker processes"
    assert "webhook replay: 46/46 handled" in messages
    assert len([m for m in messages if m.endswith("handled")]) >= 10
    assert any(m.startswith("webhook replay done: 40 resent, 5 abandoned") for m in messages)
    abandoned = [line for line in stream.getvalue().splitlines() if "webhook.abandoned" in line]
    assert len(abandoned) == 5 and all('"reason":"max_age"' in line for line in abandoned)
