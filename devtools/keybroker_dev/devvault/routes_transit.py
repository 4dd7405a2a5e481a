"""The Transit backend's paths (DOC api-docs/secret/transit.mdx; docs/facts/transit.md).

Every path is an `update` (POST) except reading a key, the wrapping key, export and
backup (`read`), listing keys (`list`) and deleting a key (`delete`); none has an
existence check, so the ACL sees `update` for imports as Vault does (§7).
"""

from __future__ import annotations

import base64
import hmac as hmac_lib
import json
import re
from typing import Any

from keybroker_dev.devvault.errors import VaultError, bad_request, not_found
from keybroker_dev.devvault.params import as_bool, as_int, as_str
from keybroker_dev.devvault.protocol import Result
from keybroker_dev.devvault.routing import Backend, Ctx, PathSpec, spec
from keybroker_dev.devvault.transit import (
    HASHES,
    HMAC_ALGORITHMS,
    SIGNING_TYPES,
    SignOptions,
    TransitKey,
    TransitKeyring,
    b64decode,
    compute_hmac,
    internal,
    public_key_text,
    sign,
    split_versioned,
    verify,
)

Match = re.Match[str]
# framework.GenericNameRegex: word characters, with - . @ inside.
NAME = r"(?P<name>\w(?:[\w.@-]*\w)?)"
EXPORT_TYPES = frozenset(
    {"encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain"}
)


def _batch(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = data.get("batch_input")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
        raise internal("failed to parse batch input")
    if not raw:
        raise bad_request("missing batch input to process")
    return raw


def _sign_options(ctx: Ctx, m: Match) -> SignOptions:
    algorithm = m["alg"] or as_str(ctx.data, "hash_algorithm") or as_str(ctx.data, "algorithm")
    algorithm = algorithm or "sha2-256"
    if algorithm not in HASHES:
        raise bad_request(f'invalid hash algorithm "{algorithm}"')
    marshaling = as_str(ctx.data, "marshaling_algorithm", "asn1") or "asn1"
    if marshaling not in ("asn1", "jws"):
        raise bad_request(f'invalid marshaling type "{marshaling}"')
    return SignOptions(
        hash_algorithm=algorithm,
        prehashed=as_bool(ctx.data, "prehashed", False),
        signature_algorithm=as_str(ctx.data, "signature_algorithm") or "pss",
        marshaling=marshaling,
        salt_length=as_str(ctx.data, "salt_length", "auto") or "auto",
    )


class TransitBackend(Backend):
    type = "transit"

    def __init__(self, keyring: TransitKeyring) -> None:
        self.keyring = keyring

    # -- keys ----------------------------------------------------------------------------
    def wrapping_key(self, ctx: Ctx, m: Match) -> Result:
        return Result(data={"public_key": self.keyring.wrapping_public_pem()})

    def list_keys(self, ctx: Ctx, m: Match) -> Result:
        names = sorted(self.keyring.keys)
        if not names:
            raise not_found()
        return Result(data={"keys": names})

    def read_key(self, ctx: Ctx, m: Match) -> Result:
        key = self.keyring.get(m["name"])
        if key is None:
            raise not_found()
        return Result(data=self.keyring.describe(key))

    def delete_key(self, ctx: Ctx, m: Match) -> None:
        self.keyring.delete(m["name"])

    def config(self, ctx: Ctx, m: Match) -> Result:
        return Result(data=self.keyring.describe(self.keyring.configure(m["name"], ctx.data)))

    def import_key(self, ctx: Ctx, m: Match) -> None:
        self.keyring.import_key(m["name"], ctx.data)

    def import_version(self, ctx: Ctx, m: Match) -> None:
        self.keyring.import_version(m["name"], ctx.data)

    # -- hmac ----------------------------------------------------------------------------
    def hmac(self, ctx: Ctx, m: Match) -> Result:
        algorithm = m["alg"] or as_str(ctx.data, "algorithm", "sha2-256") or "sha2-256"
        version = as_int(ctx.data, "key_version", 0)
        with self.keyring.lock:
            key = self.keyring.require(m["name"])
            key.version(version)  # §3: an unknown version fails the whole request
            if algorithm not in HMAC_ALGORITHMS:
                # §3: Vault answers an unknown algorithm with an error body and status 400.
                raise bad_request(f'unsupported algorithm "{algorithm}"')
            items = _batch(ctx.data)
            if items is None:
                if "input" not in ctx.data:
                    raise bad_request("missing input for HMAC")
                message = b64decode(ctx.data["input"], "input")
                return Result(data={"hmac": compute_hmac(key, version, algorithm, message)})
            results = []
            for item in items:
                entry: dict[str, Any] = {"reference": str(item.get("reference", ""))}
                if "input" not in item:
                    entry["error"] = "missing input for HMAC"
                else:
                    try:
                        message = b64decode(item["input"], "input")
                        entry["hmac"] = compute_hmac(key, version, algorithm, message)
                    except VaultError as exc:
                        entry["error"] = exc.errors[0]
                entry["valid"] = False
                results.append(entry)
            return Result(data={"batch_results": results})

    # -- sign / verify -------------------------------------------------------------------
    def sign(self, ctx: Ctx, m: Match) -> Result:
        options = _sign_options(ctx, m)
        version = as_int(ctx.data, "key_version", 0)
        with self.keyring.lock:
            key = self.keyring.require(m["name"])
            if key.type not in SIGNING_TYPES:
                raise bad_request(f"key type {key.type} does not support signing")
            if options.marshaling == "jws" and not key.type.startswith("ecdsa-"):
                raise bad_request("marshaling algorithm jws is only valid for ECDSA keys")
            items = _batch(ctx.data)
            if items is None:
                message = b64decode(as_str(ctx.data, "input"), "input")
                return Result(data={"signature": sign(key, version, options, message)})
            results = []
            for item in items:
                entry: dict[str, Any] = {"reference": str(item.get("reference", ""))}
                try:
                    message = b64decode(item.get("input", ""), "input")
                    entry["signature"] = sign(key, version, options, message)
                except VaultError as exc:
                    entry["error"] = exc.errors[0]
                results.append(entry)
            return Result(data={"batch_results": results})

    def verify(self, ctx: Ctx, m: Match) -> Result:
        has_sig, has_hmac = "signature" in ctx.data, "hmac" in ctx.data
        if has_sig and has_hmac:
            raise bad_request("provide one of 'signature' or 'hmac'")
        if not has_sig and not has_hmac:
            raise bad_request("neither a 'signature' nor an 'hmac' were given to verify")
        message = b64decode(as_str(ctx.data, "input"), "input")
        with self.keyring.lock:
            key = self.keyring.require(m["name"])
            if has_hmac:
                return Result(data={"valid": self._verify_hmac(ctx, m, key, message)})
            if key.type not in SIGNING_TYPES:
                raise bad_request(f"key type {key.type} does not support verification")
            options = _sign_options(ctx, m)
            return Result(
                data={"valid": verify(key, options, message, as_str(ctx.data, "signature"))}
            )

    @staticmethod
    def _verify_hmac(ctx: Ctx, m: Match, key: TransitKey, message: bytes) -> bool:
        algorithm = (
            m["alg"]
            or as_str(ctx.data, "hash_algorithm")
            or as_str(ctx.data, "algorithm")
            or "sha2-256"
        )
        if algorithm not in HMAC_ALGORITHMS:
            raise bad_request(f'unsupported algorithm "{algorithm}"')
        number, payload = split_versioned(as_str(ctx.data, "hmac"), "HMAC")
        if number > key.latest:
            raise bad_request("invalid HMAC: version is too new")
        expected = compute_hmac(key, number, algorithm, message).split(":", 2)[2]
        try:
            given = base64.b64decode(payload, validate=True)
        except ValueError:
            raise bad_request("unable to decode verification HMAC as base64") from None
        return hmac_lib.compare_digest(base64.b64decode(expected), given)

    # -- export / backup (§6) ------------------------------------------------------------
    def export(self, ctx: Ctx, m: Match) -> Result:
        export_type = m["type"]
        if export_type not in EXPORT_TYPES:
            raise bad_request(f"invalid export type: {export_type}")
        key = self.keyring.get(m["name"])
        if key is None:
            raise not_found()
        if not key.exportable and export_type not in ("public-key", "certificate-chain"):
            raise bad_request("private key material is not exportable")
        if export_type != "public-key":
            # Only non-exportable keys exist in keybroker's world; devvault never hands
            # private material out (a documented gap: see docs/devvault.md).
            raise bad_request(f"devvault does not export {export_type} material")
        if key.type not in SIGNING_TYPES:
            raise internal(f"unknown key type {key.type} for export type {export_type}")
        keys = {str(n): public_key_text(key.type, v.private) for n, v in key.versions.items()}
        return Result(data={"name": key.name, "type": key.type, "keys": keys})

    def backup(self, ctx: Ctx, m: Match) -> Result:
        key = self.keyring.get(m["name"])
        if key is None:
            raise internal(f"key {m['name']!r} not found")
        if not key.exportable:
            raise internal("exporting is disallowed on the policy")
        if not key.allow_plaintext_backup:
            raise internal("plaintext backup is disallowed on the policy")
        # Never reached by keybroker's keys; devvault's blob names the key and no material.
        blob = json.dumps({"name": key.name, "type": key.type, "devvault": True})
        return Result(data={"backup": base64.b64encode(blob.encode()).decode()})

    def paths(self) -> list[PathSpec]:
        alg = r"(?:/(?P<alg>[\w-]+))?"
        return [
            spec("wrapping_key", read=self.wrapping_key),
            spec("keys/?", list=self.list_keys),
            spec(f"keys/{NAME}/config", update=self.config),
            spec(f"keys/{NAME}/import", update=self.import_key),
            spec(f"keys/{NAME}/import_version", update=self.import_version),
            spec(f"keys/{NAME}", read=self.read_key, delete=self.delete_key),
            spec(f"hmac/{NAME}{alg}", update=self.hmac),
            spec(f"sign/{NAME}{alg}", update=self.sign),
            spec(f"verify/{NAME}{alg}", update=self.verify),
            spec(
                r"export/(?P<type>[\w-]+)/" + NAME + r"(?:/(?P<version>[\w-]+))?",
                read=self.export,
            ),
            spec(f"backup/{NAME}", read=self.backup),
        ]
