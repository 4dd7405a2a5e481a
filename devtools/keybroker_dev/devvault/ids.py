"""Random identifiers in Vault's shapes (docs/facts/vault.md §4.3: `hvs.` service and
`hvb.` batch token prefixes since Vault 1.10)."""

from __future__ import annotations

import secrets
import string
import uuid

_ALPHABET = string.ascii_letters + string.digits


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def service_token() -> str:
    return "hvs." + _random(24)


def batch_token() -> str:
    # Real batch tokens are long encrypted blobs; only the prefix is relied upon.
    return "hvb." + _random(88)


def accessor() -> str:
    return _random(24)


def new_uuid() -> str:
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
