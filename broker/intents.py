"""Write intents: a record in Vault, written before a key's data, of a write in flight.

One metadata-only KV entry per write at `<mount>/metadata/intents/<role>.<account>.<exchange>.<txn>`
(ids hold no dot, so the name splits back unambiguously). Its custom_metadata holds the
write's identity (`intent.*`: key path, cas base, start time, the caller's and the key's
audit HMACs, phase; under `transit` custody the Transit key, its version before the
write and the version the import makes) and the facts slot the key's metadata gets
once the data is in (`v<base+1>.*`, see broker/keystore.py). Nothing secret: the same
allow-listed facts the key's own metadata holds.

Because the record lives in Vault, any broker replica can finish a write another one
started (broker/recovery.py). Metadata-only entries are what makes this possible: a KV
v2 metadata write creates the entry without a version (docs/facts/vault.md §3). Only the
broker's policy reaches `metadata/intents/`; the site and robot read policies reach
nothing outside `site/` and `robot/` (policies/invariants.yaml), so readers never see
an intent, not even in a LIST.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from broker import ids
from broker.layout import KeyPaths, transit_key_name
from broker.vault_session import VaultSession

INTENTS_DIR = "intents"
PHASE_WRITING = "writing"  # the data write may or may not have happened
PHASE_CLEANUP = "cleanup"  # the new version is live and audited; old versions remain
PHASE_DELETING = "deleting"  # a deletion of the key (and its Transit key) is in flight
_PHASES = (PHASE_WRITING, PHASE_CLEANUP, PHASE_DELETING)


class DamagedIntent(ValueError):
    """An intent entry the broker cannot parse (left for an operator; never acted on)."""


@dataclass(frozen=True)
class Intent:
    paths: KeyPaths
    txn: str
    base: int  # the key's current version when the write started (the data write's cas)
    started_at: float  # unix time
    caller: str  # audit HMAC of the caller's token
    key_id: str  # audit HMAC of the api_key
    slot: dict[str, str] = field(repr=False)  # facts for version base + 1
    phase: str = PHASE_WRITING
    # Transit custody (docs/custody.md "Crash safety"): the Transit key this write imports
    # into or this deletion removes, its latest version before the write (0: the write
    # creates the key), and the version the import made (0: not known yet).
    transit_key: str = ""
    transit_base: int = 0
    transit_version: int = 0

    @property
    def name(self) -> str:
        p = self.paths
        return f"{p.role}.{p.account}.{p.exchange}.{self.txn}"

    @property
    def version(self) -> int:
        return self.base + 1

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.started_at

    def to_metadata(self) -> dict[str, str]:
        return {
            **self.slot,
            "intent.key": self.paths.relative,
            "intent.txn": self.txn,
            "intent.base": str(self.base),
            "intent.started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "intent.caller": self.caller or "-",  # Vault refuses empty values
            "intent.key_id": self.key_id or "-",
            "intent.phase": self.phase,
            **(
                {
                    "intent.transit_key": self.transit_key,
                    "intent.transit_base": str(self.transit_base),
                    "intent.transit_version": str(self.transit_version),
                }
                if self.transit_key
                else {}
            ),
        }

    @classmethod
    def from_metadata(cls, mount: str, custom: dict[str, str]) -> Intent:
        try:
            role, account, exchange = custom["intent.key"].split("/")
            paths = KeyPaths(
                mount,
                ids.validate_role(role),
                ids.validate_account(account),
                exchange if ids.EXCHANGE_PATTERN.fullmatch(exchange) else "",
            )
            base = int(custom["intent.base"])
            started = datetime.fromisoformat(custom["intent.started_at"]).timestamp()
            phase = custom.get("intent.phase", PHASE_WRITING)
            txn = custom["intent.txn"]
            transit_key = custom.get("intent.transit_key", "")
            transit_base = int(custom.get("intent.transit_base", "0"))
            transit_version = int(custom.get("intent.transit_version", "0"))
        except (KeyError, ValueError, ids.InvalidIdentifier):
            raise DamagedIntent("the intent record is malformed") from None
        if (
            not paths.exchange
            or base < 0
            or phase not in _PHASES
            or min(transit_base, transit_version) < 0
            or transit_key not in ("", transit_key_name(role, account, paths.exchange))
        ):
            raise DamagedIntent("the intent record is malformed")
        prefix = f"v{base + 1}."
        caller = custom.get("intent.caller", "-")
        return cls(
            paths=paths,
            txn=txn,
            base=base,
            started_at=started,
            caller="" if caller == "-" else caller,
            key_id="" if custom.get("intent.key_id", "-") == "-" else custom["intent.key_id"],
            slot={k: v for k, v in custom.items() if k.startswith(prefix)},
            phase=phase,
            transit_key=transit_key,
            transit_base=transit_base,
            transit_version=transit_version,
        )


def new_txn() -> str:
    return secrets.token_hex(8)


class IntentStore:
    """The intents directory of one KV v2 mount."""

    def __init__(self, session: VaultSession, mount: str) -> None:
        self._session = session
        self._mount = mount

    def _path(self, name: str) -> str:
        return f"/v1/{self._mount}/metadata/{INTENTS_DIR}/{name}"

    async def put(self, intent: Intent) -> None:
        await self._session.request(
            "write_intent",
            "POST",
            self._path(intent.name),
            json={"custom_metadata": intent.to_metadata()},
        )

    async def delete(self, intent: Intent) -> None:
        await self._session.request("delete_intent", "DELETE", self._path(intent.name))

    async def names(self) -> list[str]:
        response = await self._session.request(
            "list_intents", "LIST", f"/v1/{self._mount}/metadata/{INTENTS_DIR}/", missing_ok=True
        )
        return [str(k) for k in (response or {}).get("data", {}).get("keys", [])]

    async def read(self, name: str) -> Intent | None:
        response = await self._session.request(
            "read_intent", "GET", self._path(name), missing_ok=True
        )
        data = (response or {}).get("data")
        if not data:
            return None
        return Intent.from_metadata(self._mount, dict(data.get("custom_metadata") or {}))

    async def for_key(self, paths: KeyPaths) -> list[Intent]:
        """Pending intents of one key (rare: only while a write is in flight or unfinished)."""
        prefix = f"{paths.role}.{paths.account}.{paths.exchange}."
        found = []
        for name in await self.names():
            if name.startswith(prefix):
                try:
                    intent = await self.read(name)
                except DamagedIntent:
                    continue
                if intent is not None:
                    found.append(intent)
        return found
