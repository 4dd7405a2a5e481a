"""Vault Transit's "bring your own key" wrapping (docs/facts/transit.md §1).

The ciphertext of `transit/keys/:name/import` is an ephemeral AES-256 key encrypted
with RSA-OAEP (SHA-256 for both the hash and MGF1, empty label) under the mount's
wrapping key, followed by the key material wrapped under that AES key with AES key wrap
with padding (RFC 5649). The ephemeral key exists only inside this function.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

HASH_FUNCTION = "SHA256"  # the `hash_function` import parameter matching the OAEP below


class WrappingKeyError(ValueError):
    """The mount's wrapping key is not an RSA public key in PEM."""


def wrap_for_import(material: bytes, wrapping_key_pem: str) -> str:
    """Base64 of the import ciphertext for `material` under `wrapping_key_pem`."""
    try:
        public = serialization.load_pem_public_key(wrapping_key_pem.encode())
    except ValueError:
        raise WrappingKeyError("the transit wrapping key is not a PEM public key") from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise WrappingKeyError("the transit wrapping key is not an RSA key")
    ephemeral = secrets.token_bytes(32)
    head = public.encrypt(
        ephemeral,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return base64.b64encode(head + aes_key_wrap_with_padding(ephemeral, material)).decode()
