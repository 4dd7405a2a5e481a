"""The Transit engine's key ring: imported keys, their versions, and the crypto on them.

Follows Vault's builtin/logical/transit and sdk/helper/keysutil/policy.go as summarised
in docs/facts/transit.md (cited by section below as §N). What keybroker uses is served:
BYOK import and import_version (§1), key read without material (§2), hmac (§3), sign
and verify (§4), config and delete (§5), and export/backup answering as Vault does for
keys that are not exportable (§6). Routes live in routes_transit.py.

Errors: Vault answers a handler's `logical.ErrorResponse` with 400 and a plain Go error
with 500 (§7); both are reproduced with the same wording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.errors import VaultError, bad_request

# §1: the first 512 bytes of an import ciphertext are the RSA-OAEP-wrapped AES key.
ENCRYPTED_KEY_BYTES = 512
# §1: keysutil HmacMinKeySize / HmacMaxKeySize (bytes).
HMAC_MIN_KEY, HMAC_MAX_KEY = 32, 512
OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1,
    "SHA224": hashes.SHA224,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
# §3/§4: keysutil HashTypeMap names -> hashlib constructors.
HASHES: dict[str, Any] = {
    "sha1": hashlib.sha1,
    "sha2-224": hashlib.sha224,
    "sha2-256": hashlib.sha256,
    "sha2-384": hashlib.sha384,
    "sha2-512": hashlib.sha512,
    "sha3-224": hashlib.sha3_224,
    "sha3-256": hashlib.sha3_256,
    "sha3-384": hashlib.sha3_384,
    "sha3-512": hashlib.sha3_512,
}
HMAC_ALGORITHMS = frozenset(HASHES) - {"sha1"}  # §3: the hmac endpoint lists SHA-2 and SHA-3
_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha2-224": hashes.SHA224,
    "sha2-256": hashes.SHA256,
    "sha2-384": hashes.SHA384,
    "sha2-512": hashes.SHA512,
    "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256,
    "sha3-384": hashes.SHA3_384,
    "sha3-512": hashes.SHA3_512,
}
_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str]] = {
    "ecdsa-p256": (ec.SECP256R1, 256, "P-256"),
    "ecdsa-p384": (ec.SECP384R1, 384, "P-384"),
    "ecdsa-p521": (ec.SECP521R1, 521, "P-521"),
}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
SIGNING_TYPES = frozenset({"ed25519", *_EC_CURVES, *_RSA_BITS})
# §1: every type import accepts; devvault serves the ones keybroker imports.
IMPORT_TYPES = frozenset(
    {"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "hmac", *SIGNING_TYPES}
)
SERVED_TYPES = frozenset({"hmac", *SIGNING_TYPES})


def internal(message: str) -> VaultError:
    """A plain Go error from a Transit handler: Vault answers 500 (§7)."""
    return VaultError(500, f"1 error occurred:\n\t* {message}\n\n")


@cache
def _wrapping_private_key() -> rsa.RSAPrivateKey:
    # §1: Vault keeps one RSA-4096 wrapping key per mount. devvault generates one per
    # process on first use (about a second) and shares it between transit mounts; no
    # client can tell the difference, and tests do not pay for it more than once.
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


@dataclass
class KeyVersion:
    created: float
    hmac_key: bytes = field(repr=False)  # §3: the material itself for type hmac
    private: Any = field(default=None, repr=False)  # cryptography private key (asymmetric)


@dataclass
class TransitKey:
    name: str
    type: str
    versions: dict[int, KeyVersion] = field(default_factory=dict)
    deletion_allowed: bool = False
    exportable: bool = False
    allow_plaintext_backup: bool = False
    allow_rotation: bool = False
    imported: bool = True

    @property
    def latest(self) -> int:
        return max(self.versions)

    def version(self, number: int) -> KeyVersion:
        """Version `number` (0 = latest); §3 wording for versions that do not exist."""
        if number == 0:
            number = self.latest
        if number < 0:
            raise bad_request("key version does not exist (cannot be negative)")
        if number > self.latest:
            raise bad_request(f"key version does not exist; latest key version is {self.latest}")
        return self.versions[number]


def b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise bad_request(f"unable to decode {what} as base64: not a string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise bad_request(f"unable to decode {what} as base64: {exc}") from None


class TransitKeyring:
    """The keys of one transit mount, guarded by one lock (requests run in threads)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.keys: dict[str, TransitKey] = {}
        self.lock = threading.RLock()

    # -- wrapping key and import (§1) ------------------------------------------------
    @staticmethod
    def wrapping_public_pem() -> str:
        return (
            _wrapping_private_key()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @staticmethod
    def unwrap(ciphertext_b64: str, hash_function: str) -> bytes:
        algorithm = OAEP_HASHES.get(hash_function.upper())
        if algorithm is None:
            raise bad_request(f"unknown hash function: {hash_function}")
        try:
            ciphertext = base64.b64decode(ciphertext_b64, validate=True)
        except ValueError:
            raise internal("illegal base64 data in ciphertext") from None
        if len(ciphertext) <= ENCRYPTED_KEY_BYTES:
            raise internal("provided ciphertext is too short")
        try:
            ephemeral = _wrapping_private_key().decrypt(
                ciphertext[:ENCRYPTED_KEY_BYTES],
                padding.OAEP(mgf=padding.MGF1(algorithm()), algorithm=algorithm(), label=None),
            )
        except ValueError:
            raise internal("crypto/rsa: decryption error") from None
        if len(ephemeral) != 32:
            raise internal("expected ephemeral AES key to be 256-bit")
        try:
            return aes_key_unwrap_with_padding(ephemeral, ciphertext[ENCRYPTED_KEY_BYTES:])
        except InvalidUnwrap:
            raise internal("kwp: failed to unwrap key") from None

    def new_version(self, key_type: str, material: bytes) -> KeyVersion:
        """Parse imported material as keysutil's ImportPublicOrPrivate does (§1)."""
        now = self.clock.now()
        if key_type == "hmac":
            if not HMAC_MIN_KEY <= len(material) <= HMAC_MAX_KEY:
                raise internal(f"invalid key size {len(material)} bytes for key type hmac")
            return KeyVersion(now, hmac_key=bytes(material))
        try:
            private = serialization.load_der_private_key(material, password=None)
        except (ValueError, TypeError):
            raise internal("error parsing asymmetric key: not a PKCS#8 private key") from None
        expected: tuple[type, ...]
        if key_type == "ed25519":
            expected = (ed25519.Ed25519PrivateKey,)
        elif key_type in _EC_CURVES:
            expected = (ec.EllipticCurvePrivateKey,)
        else:
            expected = (rsa.RSAPrivateKey,)
        if not isinstance(private, expected):
            raise internal(f"invalid key type: expected {key_type}")
        if key_type in _EC_CURVES and not isinstance(
            private.curve,  # type: ignore[union-attr]
            _EC_CURVES[key_type][0],
        ):
            raise internal(f"invalid curve: expected {key_type}")
        if key_type in _RSA_BITS and private.key_size != _RSA_BITS[key_type]:  # type: ignore[union-attr]
            raise internal(f"invalid key size: expected {key_type}")
        # §3: asymmetric keys get a random 32-byte HMAC key of their own.
        return KeyVersion(now, hmac_key=secrets.token_bytes(32), private=private)

    def import_key(self, name: str, data: dict[str, Any]) -> None:
        key_type = str(data.get("type") or "aes256-gcm96").lower()
        if "convergent_encryption" in data:
            raise internal("import cannot be used on keys with convergent encryption enabled")
        rotate_period = data.get("auto_rotate_period")
        if rotate_period not in (None, 0, "0", "0s", "") and not _truthy(data, "allow_rotation"):
            raise internal("allow_rotation must be set to true if auto-rotation is enabled")
        if "ciphertext" not in data:
            raise internal("one of the following fields, ciphertext xor public_key, has to be set")
        if key_type not in IMPORT_TYPES:
            raise bad_request(f"unknown key type: {key_type}")
        if key_type not in SERVED_TYPES:
            raise bad_request(f"devvault does not serve transit keys of type {key_type}")
        with self.lock:
            if name in self.keys:
                raise internal(
                    "the import path cannot be used with an existing key; use import-version "
                    "to rotate an existing imported key"
                )
            material = self.unwrap(
                str(data["ciphertext"]), str(data.get("hash_function") or "SHA256")
            )
            version = self.new_version(key_type, material)
            self.keys[name] = TransitKey(
                name=name,
                type=key_type,
                versions={1: version},
                exportable=_truthy(data, "exportable"),
                allow_plaintext_backup=_truthy(data, "allow_plaintext_backup"),
                allow_rotation=_truthy(data, "allow_rotation"),
            )

    def import_version(self, name: str, data: dict[str, Any]) -> None:
        if "ciphertext" not in data:
            raise internal("one of the following fields, ciphertext xor public_key, has to be set")
        with self.lock:
            key = self.keys.get(name)
            if key is None:
                raise internal(
                    f"no key found with name {name}; to import a new key, use the import/ endpoint"
                )
            if not key.imported:
                raise internal("the import_version endpoint can only be used with an imported key")
            material = self.unwrap(
                str(data["ciphertext"]), str(data.get("hash_function") or "SHA256")
            )
            # §1: the latest version already holds its private part, so a new version is made.
            key.versions[key.latest + 1] = self.new_version(key.type, material)

    # -- read, config, delete (§2, §5) -----------------------------------------------
    def get(self, name: str) -> TransitKey | None:
        return self.keys.get(name)

    def require(self, name: str) -> TransitKey:
        key = self.keys.get(name)
        if key is None:
            raise bad_request("encryption key not found")
        return key

    def describe(self, key: TransitKey) -> dict[str, Any]:
        """§2: formatKeyPolicy; public keys only, never private or HMAC material."""
        data: dict[str, Any] = {
            "name": key.name,
            "type": key.type,
            "derived": False,
            "deletion_allowed": key.deletion_allowed,
            "min_available_version": 0,
            "min_decryption_version": 1,
            "min_encryption_version": 0,
            "latest_version": key.latest,
            "exportable": key.exportable,
            "allow_plaintext_backup": key.allow_plaintext_backup,
            "supports_encryption": False,
            "supports_decryption": False,
            "supports_signing": key.type in SIGNING_TYPES,
            "supports_derivation": key.type == "ed25519",
            "auto_rotate_period": 0,
            "imported_key": key.imported,
            "imported_key_allow_rotation": key.allow_rotation,
        }
        if key.type == "hmac":
            data["key_size"] = len(key.versions[key.latest].hmac_key)
            data["keys"] = {str(n): int(v.created) for n, v in key.versions.items()}
        else:
            data["keys"] = {
                str(n): {
                    "creation_time": rfc3339(v.created),
                    "name": _public_name(key.type),
                    "public_key": public_key_text(key.type, v.private),
                }
                for n, v in key.versions.items()
            }
        return data

    def configure(self, name: str, data: dict[str, Any]) -> TransitKey:
        with self.lock:
            key = self.require(name)
            # §5: both switch on once and stay on; a request to switch them off is
            # ignored (path_keys_config.go: "Don't unset the already set value").
            if _truthy(data, "exportable"):
                key.exportable = True
            if _truthy(data, "allow_plaintext_backup"):
                key.allow_plaintext_backup = True
            if "deletion_allowed" in data:
                key.deletion_allowed = _truthy(data, "deletion_allowed")
            return key

    def delete(self, name: str) -> None:
        with self.lock:
            key = self.keys.get(name)
            if key is None:
                raise bad_request(f"error deleting policy {name}: could not delete key; not found")
            if not key.deletion_allowed:
                raise bad_request(
                    f"error deleting policy {name}: deletion is not allowed for this key"
                )
            del self.keys[name]


def _truthy(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _public_name(key_type: str) -> str:
    if key_type in _EC_CURVES:
        return _EC_CURVES[key_type][2]
    return key_type


def public_key_text(key_type: str, private: Any) -> str:
    """§2: ed25519 as base64 of the raw key; ECDSA and RSA as a PKIX PEM."""
    public = private.public_key()
    if key_type == "ed25519":
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# -- hmac, sign, verify (§3, §4) --------------------------------------------------------
def compute_hmac(key: TransitKey, version: int, algorithm: str, message: bytes) -> str:
    number = version or key.latest
    entry = key.version(number)
    mac = hmac.new(entry.hmac_key, message, HASHES[algorithm]).digest()
    return f"vault:v{number}:{base64.b64encode(mac).decode()}"


def split_versioned(value: str, what: str) -> tuple[int, str]:
    """`vault:v<N>:<payload>` -> (N, payload), with §3/§4 wording for malformed values."""
    if not value.startswith("vault:v"):
        raise bad_request(f"invalid {what} to verify: no prefix")
    parts = value[len("vault:v") :].split(":", 1)
    if len(parts) != 2:
        raise bad_request(f"invalid {what}: wrong number of fields")
    try:
        return int(parts[0]), parts[1]
    except ValueError:
        raise bad_request(f"invalid {what}: version number could not be decoded") from None


@dataclass(frozen=True)
class SignOptions:
    hash_algorithm: str = "sha2-256"
    prehashed: bool = False
    signature_algorithm: str = "pss"
    marshaling: str = "asn1"
    salt_length: str = "auto"


def _digest(options: SignOptions, message: bytes) -> bytes:
    if options.prehashed:
        return message
    return HASHES[options.hash_algorithm](message).digest()


def _pss_salt(options: SignOptions, signing: bool) -> Any:
    if options.salt_length == "auto":
        # Go's PSSSaltLengthAuto: the largest salt when signing, detected when verifying.
        return padding.PSS.MAX_LENGTH if signing else padding.PSS.AUTO
    if options.salt_length == "hash":
        return padding.PSS.DIGEST_LENGTH
    try:
        return int(options.salt_length)
    except ValueError:
        raise bad_request(f"requested salt length {options.salt_length} is invalid") from None


def sign(key: TransitKey, version: int, options: SignOptions, message: bytes) -> str:
    number = version or key.latest
    private = key.version(number).private
    if key.type == "ed25519":
        if options.prehashed:
            raise bad_request("devvault signs pure Ed25519 only (prehashed is not served)")
        raw = private.sign(message)
    elif key.type in _EC_CURVES:
        digest = _digest(options, message)
        algorithm = utils.Prehashed(_CRYPTO_HASHES[options.hash_algorithm]())
        if len(digest) != algorithm.digest_size:
            raise bad_request("the input is not a digest of the selected hash algorithm")
        der = private.sign(digest, ec.ECDSA(algorithm))
        if options.marshaling == "jws":
            r, s = utils.decode_dss_signature(der)
            size = (_EC_CURVES[key.type][1] + 7) // 8
            raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        else:
            raw = der
    else:
        digest = _digest(options, message)
        algorithm = utils.Prehashed(_CRYPTO_HASHES[options.hash_algorithm]())
        pad: padding.AsymmetricPadding
        if options.signature_algorithm == "pkcs1v15":
            pad = padding.PKCS1v15()
        elif options.signature_algorithm == "pss":
            pad = padding.PSS(
                mgf=padding.MGF1(_CRYPTO_HASHES[options.hash_algorithm]()),
                salt_length=_pss_salt(options, signing=True),
            )
        else:
            raise VaultError(
                500, f"unsupported rsa signature algorithm {options.signature_algorithm}"
            )
        raw = private.sign(digest, pad, algorithm)
    encoded = (
        base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        if options.marshaling == "jws"
        else base64.b64encode(raw).decode()
    )
    return f"vault:v{number}:{encoded}"


def verify(key: TransitKey, options: SignOptions, message: bytes, signature: str) -> bool:
    number, payload = split_versioned(signature, "signature")
    if number > key.latest:
        raise bad_request("invalid signature: version is too new")
    try:
        if options.marshaling == "jws":
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        else:
            raw = base64.b64decode(payload, validate=True)
    except ValueError:
        raise bad_request("invalid base64 signature value") from None
    public = key.version(number).private.public_key()
    try:
        if key.type == "ed25519":
            public.verify(raw, message)
        elif key.type in _EC_CURVES:
            digest = _digest(options, message)
            if options.marshaling == "jws":
                half = len(raw) // 2
                raw = utils.encode_dss_signature(
                    int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
                )
            public.verify(
                raw, digest, ec.ECDSA(utils.Prehashed(_CRYPTO_HASHES[options.hash_algorithm]()))
            )
        else:
            digest = _digest(options, message)
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if options.signature_algorithm == "pkcs1v15"
                else padding.PSS(
                    mgf=padding.MGF1(_CRYPTO_HASHES[options.hash_algorithm]()),
                    salt_length=_pss_salt(options, signing=False),
                )
            )
            public.verify(
                raw, digest, pad, utils.Prehashed(_CRYPTO_HASHES[options.hash_algorithm]())
            )
    except (InvalidSignature, ValueError):
        return False
    return True
