"""Webhook records: a webhook event kept in Vault until every receiver has it.

One metadata-only KV entry per event at `<mount>/metadata/webhooks/<event id>`, written
before the first delivery attempt and deleted after the last (docs/key-health.md,
"Webhooks"). The pattern of the write intents (broker/intents.py): a KV v2 metadata
write creates an entry without a version, so the record holds no data at all, only
custom_metadata (docs/facts/vault.md §3):

- `event.<field>`: each field of the event body as its JSON text, so a resent body is
  byte-for-byte the first one (same id, same types; `""` is a non-empty value, which
  Vault requires). Events carry identifiers and statuses only (broker/health/service.py
  builds them), never a secret or a token;
- `webhook.created_at`: when the event was recorded (start-up abandons records older
  than `KEYBROKER_WEBHOOK_MAX_AGE`);
- `webhook.delivered`: the receivers that already answered 2xx, as 16-hex HMACs of their
  URL keyed by the webhook secret (a receiver URL may embed a token: it is never stored).

Vault limits custom_metadata to 64 keys, keys of 1-128 characters and values of 1-512
bytes, printable (docs/facts/vault.md §3): an event that does not fit is refused here
(`RecordTooLarge`) before Vault sees it, and delivered from memory only. Only the
broker's policy reaches `metadata/webhooks/`; no reader policy does, not even to LIST.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.names import (
    CUSTOM_METADATA_MAX_KEY_LENGTH,
    CUSTOM_METADATA_MAX_KEYS,
    CUSTOM_METADATA_MAX_VALUE_BYTES,
)
from broker.vault_session import VaultSession

WEBHOOKS_DIR = "webhooks"
EVENT_PREFIX = "event."
CREATED_AT = "webhook.created_at"
DELIVERED = "webhook.delivered"
# Event ids name the entry: one path segment, nothing a LIST could leak (random hex).
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class DamagedRecord(ValueError):
    """A record the broker cannot parse (left for an operator; never delivered)."""


class RecordTooLarge(ValueError):
    """The event does not fit Vault's custom_metadata limits."""


def url_id(secret: bytes, url: str) -> str:
    """Which receiver, without the URL: 16 hex of HMAC-SHA256(webhook secret, url)."""
    return hmac.new(secret, url.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class WebhookRecord:
    body: dict[str, Any]  # the event as POSTed, `id` included
    created_at: float  # unix time
    delivered: frozenset[str] = field(default_factory=frozenset)  # url_id()s

    @property
    def event_id(self) -> str:
        return str(self.body["id"])

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created_at

    def to_metadata(self) -> dict[str, str]:
        custom = {
            EVENT_PREFIX + name: json.dumps(value, separators=(",", ":"), ensure_ascii=True)
            for name, value in self.body.items()
        }
        custom[CREATED_AT] = datetime.fromtimestamp(self.created_at, UTC).isoformat()
        if self.delivered:  # Vault refuses empty values
            custom[DELIVERED] = ",".join(sorted(self.delivered))
        if len(custom) > CUSTOM_METADATA_MAX_KEYS or any(
            len(k) > CUSTOM_METADATA_MAX_KEY_LENGTH
            or len(v.encode()) > CUSTOM_METADATA_MAX_VALUE_BYTES
            for k, v in custom.items()
        ):
            raise RecordTooLarge("the webhook event exceeds Vault's custom_metadata limits")
        return custom

    @classmethod
    def from_metadata(cls, name: str, custom: dict[str, str]) -> WebhookRecord:
        try:
            body = {
                k[len(EVENT_PREFIX) :]: json.loads(v)
                for k, v in custom.items()
                if k.startswith(EVENT_PREFIX)
            }
            created = datetime.fromisoformat(custom[CREATED_AT]).timestamp()
        except (KeyError, ValueError):
            raise DamagedRecord("the webhook record is malformed") from None
        delivered = frozenset(d for d in custom.get(DELIVERED, "").split(",") if d)
        if body.get("id") != name:
            raise DamagedRecord("the webhook record is malformed")
        return cls(body=body, created_at=created, delivered=delivered)


class WebhookRecords:
    """The webhooks directory of one KV v2 mount."""

    def __init__(self, session: VaultSession, mount: str) -> None:
        self._session = session
        self._mount = mount

    def _path(self, event_id: str) -> str:
        if not EVENT_ID.fullmatch(event_id):
            raise ValueError("a webhook event id is 1-128 letters, digits, '-' or '_'")
        return f"/v1/{self._mount}/metadata/{WEBHOOKS_DIR}/{event_id}"

    async def put(self, record: WebhookRecord) -> None:
        """Create or overwrite the record. RecordTooLarge, VaultUnavailable, VaultRefused."""
        custom = record.to_metadata()
        await self._session.request(
            "write_webhook", "POST", self._path(record.event_id), json={"custom_metadata": custom}
        )

    async def delete(self, event_id: str) -> None:
        await self._session.request("delete_webhook", "DELETE", self._path(event_id))

    async def names(self) -> list[str]:
        response = await self._session.request(
            "list_webhooks", "LIST", f"/v1/{self._mount}/metadata/{WEBHOOKS_DIR}/", missing_ok=True
        )
        keys: Iterable[Any] = (response or {}).get("data", {}).get("keys", [])
        return [str(k) for k in keys if not str(k).endswith("/")]

    async def read(self, event_id: str) -> WebhookRecord | None:
        """The record, None when it is gone. DamagedRecord."""
        response = await self._session.request(
            "read_webhook", "GET", self._path(event_id), missing_ok=True
        )
        data = (response or {}).get("data")
        if not data:
            return None
        return WebhookRecord.from_metadata(event_id, dict(data.get("custom_metadata") or {}))
