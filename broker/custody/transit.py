"""Transit custody at intake: import the checked secret, prove it, hand KV what it may keep.

    classify the secret (broker/custody/material.py) -> fetch the wrapping key
    -> import (new key: never exportable, no plaintext backup, then deletion_allowed)
       or import_version (replacement of the same type)
    -> prove the Transit key holds the checked secret, without a signing right:
       HMAC keys: an HMAC of a random challenge computed here, confirmed by transit/verify;
       public-key types: the public key Vault shows equals the submitted key's
    -> the KV record: api key, passphrase, and the Transit key reference (no secret)

A failed proof of a new key deletes it; a failed proof of a replacement leaves a version
nothing refers to (KV still names the proven version) and raises. Vault facts:
docs/facts/transit.md. Messages never hold the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import hvac.exceptions as hvac_errors
from cryptography.hazmat.primitives import serialization

from broker.custody.byok import HASH_FUNCTION, wrap_for_import
from broker.custody.material import NotImportable, SecretForm, classify
from broker.exchanges.base import Credentials
from broker.layout import KeyPaths, transit_key_name
from broker.vault_session import VaultSession, VaultUnavailable

__all__ = [
    "CustodyProofFailed",
    "NotImportable",
    "TransitCustody",
    "TransitPlan",
    "TransitRecord",
]


class CustodyProofFailed(VaultUnavailable):
    """Vault's Transit key did not match the checked secret; nothing was stored (answered
    like an unavailable Vault: 503, retry later)."""


@dataclass(frozen=True)
class TransitRecord:
    """Where a key's secret lives under `transit` custody (kept in the KV record)."""

    mount: str
    key: str
    version: int
    scheme: str

    def kv_fields(self) -> dict[str, str]:
        return {
            "custody": "transit",
            "transit_mount": self.mount,
            "transit_key": self.key,
            "transit_version": str(self.version),
            "scheme": self.scheme,
        }


@dataclass(frozen=True)
class TransitPlan:
    """The Transit key an import goes to, and what it finds there."""

    key: str
    base: int  # its latest version before the import; 0: the import creates the key
    retype: bool  # a key of another type is there and goes first
    wrapping_pem: str = field(repr=False, default="")  # the mount's wrapping key (public)


class TransitCustody:
    def __init__(self, session: VaultSession, mount: str) -> None:
        self._session = session
        self._mount = mount

    async def store(
        self,
        paths: KeyPaths,
        credentials: Credentials,
        form: SecretForm | None = None,
        plan: TransitPlan | None = None,
    ) -> dict[str, str]:
        """Import the secret (classified as `form`, into `plan`'s key); the KV data to
        write instead of the secret.

        Raises NotImportable (typed reason, nothing stored), CustodyProofFailed, or the
        session's VaultUnavailable/VaultRefused."""
        form = form or classify(paths.exchange, credentials.secret)
        record = await self.import_secret(paths, form, plan)
        data = {"api_key": credentials.api_key, **record.kv_fields()}
        if credentials.passphrase:
            data["passphrase"] = credentials.passphrase
        return data

    async def plan(self, paths: KeyPaths, form: SecretForm) -> TransitPlan:
        """What importing `form` will do to the key's Transit key (read before the write's
        intent is recorded, so that the intent can say it: docs/custody.md)."""
        name = transit_key_name(paths.role, paths.account, paths.exchange)
        # The wrapping key too: Vault makes it on the mount's first request, which can
        # take a while (RSA-4096), and this is before the intent's clock starts.
        wrapping = await self._session.request(
            "transit_wrapping_key", "GET", f"/v1/{self._mount}/wrapping_key"
        )
        pem = str(((wrapping or {}).get("data") or {}).get("public_key", ""))
        existing = await self._read_key(name)
        if existing is None:
            return TransitPlan(name, 0, retype=False, wrapping_pem=pem)
        if existing.get("type") != form.transit_type:
            return TransitPlan(name, 0, retype=True, wrapping_pem=pem)
        latest = int(existing.get("latest_version") or 0)
        return TransitPlan(name, latest, retype=False, wrapping_pem=pem)

    async def import_secret(
        self, paths: KeyPaths, form: SecretForm, plan: TransitPlan | None = None
    ) -> TransitRecord:
        plan = plan or await self.plan(paths, form)
        name = plan.key
        base = f"/v1/{self._mount}"
        ciphertext = wrap_for_import(form.material, plan.wrapping_pem)
        if plan.retype:
            # A new kind of key (e.g. Binance HMAC -> Ed25519): Transit cannot hold two
            # types under one name, so the old key goes (docs/custody.md, "Replacing").
            await self.delete(paths)
        created = plan.base == 0
        if created:
            await self._session.request(
                "transit_import",
                "POST",
                f"{base}/keys/{name}/import",
                json={
                    "ciphertext": ciphertext,
                    "hash_function": HASH_FUNCTION,
                    "type": form.transit_type,
                    # exportable / allow_plaintext_backup: false by default, and the
                    # broker's policy refuses both parameters (docs/custody.md).
                },
            )
            await self._session.request(
                "transit_config",
                "POST",
                f"{base}/keys/{name}/config",
                json={"deletion_allowed": True},
            )
        else:
            await self._session.request(
                "transit_import_version",
                "POST",
                f"{base}/keys/{name}/import_version",
                json={"ciphertext": ciphertext, "hash_function": HASH_FUNCTION},
            )
        described = await self._read_key(name) or {}
        version = int(described.get("latest_version") or 0)
        try:
            await self._prove(name, version, form, described)
        except CustodyProofFailed:
            if created:
                await self.delete(paths)
            raise
        return TransitRecord(self._mount, name, version, form.scheme)

    async def delete(self, paths: KeyPaths) -> bool:
        """Remove the key's Transit key (deletion was allowed at import). False if none."""
        name = transit_key_name(paths.role, paths.account, paths.exchange)
        if await self._read_key(name) is None:
            return False
        await self._session.request(
            "transit_config",
            "POST",
            f"/v1/{self._mount}/keys/{name}/config",
            json={"deletion_allowed": True},
        )
        await self._session.request("transit_delete", "DELETE", f"/v1/{self._mount}/keys/{name}")
        return True

    async def _read_key(self, name: str) -> dict[str, Any] | None:
        answer = await self._session.request(
            "transit_read_key", "GET", f"/v1/{self._mount}/keys/{name}", missing_ok=True
        )
        return (answer or {}).get("data") if answer else None

    async def _prove(
        self, name: str, version: int, form: SecretForm, described: dict[str, Any]
    ) -> None:
        if not version:
            raise CustodyProofFailed("Vault shows no version of the imported key")
        if form.transit_type == "hmac":
            challenge = secrets.token_bytes(32)
            mac = hmac.new(form.material, challenge, hashlib.sha256).digest()
            try:
                answer = await self._session.request(
                    "transit_verify",
                    "POST",
                    f"/v1/{self._mount}/verify/{name}",
                    json={
                        "input": base64.b64encode(challenge).decode(),
                        "hmac": f"vault:v{version}:{base64.b64encode(mac).decode()}",
                    },
                )
            except hvac_errors.InvalidRequest:
                raise CustodyProofFailed("Vault could not verify the imported key") from None
            if not ((answer or {}).get("data") or {}).get("valid"):
                raise CustodyProofFailed("the Transit key does not hold the checked secret")
            return
        entry = (described.get("keys") or {}).get(str(version)) or {}
        if not _same_public_key(form, str(entry.get("public_key") or "")):
            raise CustodyProofFailed("the Transit key does not hold the checked secret")


def _same_public_key(form: SecretForm, shown: str) -> bool:
    """Whether Vault's public key (docs/facts/transit.md §2: base64 raw for Ed25519, a
    PKIX PEM otherwise) is the submitted key's. Compared as keys, not as text."""
    private: Any = serialization.load_der_private_key(form.material, password=None)
    public = private.public_key()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        if form.transit_type == "ed25519":
            return bool(hmac.compare_digest(base64.b64decode(shown), public.public_bytes(*raw)))
        loaded = serialization.load_pem_public_key(shown.encode())
    except ValueError:
        return False
    return bool(loaded.public_bytes(*der) == public.public_bytes(*der))
