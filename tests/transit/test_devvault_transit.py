"""devvault's Transit engine, each answer pinned to docs/facts/transit.md.

Runs on `vault_endpoint`, so the same assertions hold against a real Vault when
KEYBROKER_TEST_VAULT_ADDR is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tests.transit.conftest import TransitMount, pkcs8

SECRET = b"canary-transit-secret-0123456789abcdef"  # 38 bytes: an importable HMAC key
B64 = base64.b64encode


def _b64(data: bytes) -> str:
    return B64(data).decode()


def _mac(answer: str) -> tuple[int, bytes]:
    prefix, version, payload = answer.split(":")
    assert prefix == "vault"
    return int(version[1:]), base64.b64decode(payload)


# -- §1 wrapping key and import ---------------------------------------------------------
def test_wrapping_key_is_an_rsa_4096_public_key(transit: TransitMount) -> None:
    pem = transit.client.read(f"{transit.path}/wrapping_key")["data"]["public_key"]
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 4096


@pytest.mark.parametrize("size", [31, 513])
def test_hmac_import_outside_32_to_512_bytes_is_refused(transit: TransitMount, size: int) -> None:
    with pytest.raises(hvac.exceptions.InternalServerError, match=f"invalid key size {size}"):
        transit.import_key("short", "hmac", b"k" * size)
    assert transit.client.read(f"{transit.path}/keys/short") is None  # hvac: None on 404


def test_import_onto_an_existing_name_is_refused(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    with pytest.raises(hvac.exceptions.InternalServerError, match="use import-version"):
        transit.import_key("k", "hmac", SECRET)


def test_a_short_ciphertext_is_refused(transit: TransitMount) -> None:
    with pytest.raises(hvac.exceptions.InternalServerError, match="too short"):
        transit.client.write(
            f"{transit.path}/keys/k/import", ciphertext=_b64(b"x" * 512), type="hmac"
        )


def test_import_version_adds_a_version_and_old_versions_stay_usable(
    transit: TransitMount,
) -> None:
    transit.import_key("k", "hmac", SECRET)
    transit.client.write(
        f"{transit.path}/keys/k/import_version", ciphertext=transit.wrap(b"n" * 40)
    )
    data = transit.client.read(f"{transit.path}/keys/k")["data"]
    assert data["latest_version"] == 2
    latest = transit.client.write(f"{transit.path}/hmac/k", input=_b64(b"m"))["data"]["hmac"]
    first = transit.client.write(f"{transit.path}/hmac/k", input=_b64(b"m"), key_version=1)
    assert _mac(latest) == (2, hmac.new(b"n" * 40, b"m", hashlib.sha256).digest())
    assert _mac(first["data"]["hmac"]) == (1, hmac.new(SECRET, b"m", hashlib.sha256).digest())


def test_import_version_needs_an_existing_key(transit: TransitMount) -> None:
    with pytest.raises(hvac.exceptions.InternalServerError, match="use the import/ endpoint"):
        transit.client.write(
            f"{transit.path}/keys/nope/import_version", ciphertext=transit.wrap(SECRET)
        )


# -- §2 read key: never material ------------------------------------------------------------
def test_reading_an_hmac_key_shows_no_material(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    data = transit.client.read(f"{transit.path}/keys/k")["data"]
    assert data["type"] == "hmac"
    assert data["exportable"] is False and data["allow_plaintext_backup"] is False
    assert data["imported_key"] is True
    assert data["key_size"] == len(SECRET)
    text = json.dumps(data)
    for form in (SECRET.decode(), _b64(SECRET), SECRET.hex()):
        assert form not in text


def test_reading_an_asymmetric_key_shows_its_public_key(
    transit: TransitMount, asymmetric_keys: dict[str, object]
) -> None:
    for key_type, private in asymmetric_keys.items():
        transit.import_key(key_type, key_type, pkcs8(private))
        entry = transit.client.read(f"{transit.path}/keys/{key_type}")["data"]["keys"]["1"]
        public = private.public_key()  # type: ignore[attr-defined]
        if key_type == "ed25519":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            assert entry["public_key"] == _b64(raw)
        else:
            loaded = serialization.load_pem_public_key(entry["public_key"].encode())
            assert loaded.public_numbers() == public.public_numbers()  # type: ignore[attr-defined]


# -- §3 hmac ----------------------------------------------------------------------------
ALGORITHMS = {
    "sha2-224": hashlib.sha224,
    "sha2-256": hashlib.sha256,
    "sha2-384": hashlib.sha384,
    "sha2-512": hashlib.sha512,
    "sha3-224": hashlib.sha3_224,
    "sha3-256": hashlib.sha3_256,
    "sha3-384": hashlib.sha3_384,
    "sha3-512": hashlib.sha3_512,
}


def test_hmac_of_every_documented_algorithm_is_the_hmac_of_the_material(
    transit: TransitMount,
) -> None:
    transit.import_key("k", "hmac", SECRET)
    for algorithm, digest in ALGORITHMS.items():
        expected = hmac.new(SECRET, b"payload", digest).digest()
        in_url = transit.client.write(f"{transit.path}/hmac/k/{algorithm}", input=_b64(b"payload"))
        in_body = transit.client.write(
            f"{transit.path}/hmac/k", input=_b64(b"payload"), algorithm=algorithm
        )
        assert _mac(in_url["data"]["hmac"]) == (1, expected), algorithm
        assert _mac(in_body["data"]["hmac"]) == (1, expected), algorithm


def test_hmac_batch_input_keeps_order_and_references(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    batch = [{"input": _b64(b"a"), "reference": "one"}, {"input": _b64(b"b"), "reference": "two"}]
    results = transit.client.write(f"{transit.path}/hmac/k", batch_input=batch)["data"][
        "batch_results"
    ]
    assert [r["reference"] for r in results] == ["one", "two"]
    assert [_mac(r["hmac"])[1] for r in results] == [
        hmac.new(SECRET, m, hashlib.sha256).digest() for m in (b"a", b"b")
    ]


def test_hmac_errors(transit: TransitMount) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="encryption key not found"):
        transit.client.write(f"{transit.path}/hmac/missing", input=_b64(b"x"))
    transit.import_key("k", "hmac", SECRET)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="missing input for HMAC"):
        transit.client.write(f"{transit.path}/hmac/k")
    with pytest.raises(hvac.exceptions.InvalidRequest, match="latest key version is 1"):
        transit.client.write(f"{transit.path}/hmac/k", input=_b64(b"x"), key_version=2)


def test_verify_checks_an_hmac_without_producing_one(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    good = "vault:v1:" + _b64(hmac.new(SECRET, b"challenge", hashlib.sha256).digest())
    bad = "vault:v1:" + _b64(hmac.new(b"other" * 8, b"challenge", hashlib.sha256).digest())
    verify = f"{transit.path}/verify/k"
    assert transit.client.write(verify, input=_b64(b"challenge"), hmac=good)["data"]["valid"]
    assert not transit.client.write(verify, input=_b64(b"challenge"), hmac=bad)["data"]["valid"]


# -- §4 sign / verify -----------------------------------------------------------------------
def test_ed25519_signs_the_input_itself(
    transit: TransitMount, asymmetric_keys: dict[str, object]
) -> None:
    private = asymmetric_keys["ed25519"]
    transit.import_key("ed", "ed25519", pkcs8(private))
    answer = transit.client.write(f"{transit.path}/sign/ed", input=_b64(b"query=1"))
    version, signature = _mac(answer["data"]["signature"])
    assert version == 1
    assert signature == private.sign(b"query=1")  # type: ignore[attr-defined]


def test_ecdsa_p256_jws_marshaling_is_r_concat_s_in_base64url(
    transit: TransitMount, asymmetric_keys: dict[str, object]
) -> None:
    private = asymmetric_keys["ecdsa-p256"]
    transit.import_key("ec", "ecdsa-p256", pkcs8(private))
    answer = transit.client.write(
        f"{transit.path}/sign/ec", input=_b64(b"header.payload"), marshaling_algorithm="jws"
    )["data"]["signature"]
    payload = answer.split(":")[2]
    assert "=" not in payload and "+" not in payload and "/" not in payload
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert len(raw) == 64
    der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    private.public_key().verify(der, b"header.payload", ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    asn1 = transit.client.write(f"{transit.path}/sign/ec", input=_b64(b"m"))["data"]["signature"]
    private.public_key().verify(_mac(asn1)[1], b"m", ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    assert transit.client.write(
        f"{transit.path}/verify/ec",
        input=_b64(b"header.payload"),
        signature=answer,
        marshaling_algorithm="jws",
    )["data"]["valid"]


def test_rsa_pkcs1v15_and_pss(transit: TransitMount, asymmetric_keys: dict[str, object]) -> None:
    private = asymmetric_keys["rsa-2048"]
    transit.import_key("rsa", "rsa-2048", pkcs8(private))
    pkcs1 = transit.client.write(
        f"{transit.path}/sign/rsa/sha2-256", input=_b64(b"q"), signature_algorithm="pkcs1v15"
    )["data"]["signature"]
    # PKCS#1 v1.5 is deterministic: the same bytes a local signer makes.
    assert _mac(pkcs1)[1] == private.sign(b"q", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
    pss = transit.client.write(f"{transit.path}/sign/rsa", input=_b64(b"q"))["data"]["signature"]
    private.public_key().verify(  # type: ignore[attr-defined]
        _mac(pss)[1],
        b"q",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        hashes.SHA256(),
    )
    prehashed = transit.client.write(
        f"{transit.path}/sign/rsa",
        input=_b64(hashlib.sha256(b"q").digest()),
        prehashed=True,
        signature_algorithm="pkcs1v15",
    )["data"]["signature"]
    assert prehashed == pkcs1


def test_hmac_keys_cannot_sign(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="does not support signing"):
        transit.client.write(f"{transit.path}/sign/k", input=_b64(b"x"))


# -- §5 config and delete -------------------------------------------------------------------
def test_delete_needs_deletion_allowed(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="deletion is not allowed"):
        transit.client.delete(f"{transit.path}/keys/k")
    transit.client.write(f"{transit.path}/keys/k/config", deletion_allowed=True)
    transit.client.delete(f"{transit.path}/keys/k")
    assert transit.client.read(f"{transit.path}/keys/k") is None  # hvac: None on 404


def test_exportable_cannot_be_switched_off(transit: TransitMount) -> None:
    """Vault ignores a request to switch `exportable` off: the key stays exportable."""
    transit.import_key("k", "hmac", SECRET, exportable=True)
    answer = transit.client.write(f"{transit.path}/keys/k/config", exportable=False)
    assert answer["data"]["exportable"] is True
    assert transit.client.read(f"{transit.path}/keys/k")["data"]["exportable"] is True


# -- §6 export and backup of keys that are not exportable ---------------------------------
def test_export_and_backup_of_a_non_exportable_key_are_refused(transit: TransitMount) -> None:
    transit.import_key("k", "hmac", SECRET)
    for kind in ("hmac-key", "signing-key", "encryption-key"):
        with pytest.raises(hvac.exceptions.InvalidRequest, match="not exportable"):
            transit.client.read(f"{transit.path}/export/{kind}/k")
    with pytest.raises(hvac.exceptions.InternalServerError, match="exporting is disallowed"):
        transit.client.read(f"{transit.path}/backup/k")


# -- ACL: the same engine as every other path ------------------------------------------
def test_acl_limits_hmac_to_the_granted_key_names(
    transit: TransitMount, vault_client: hvac.Client, name: object
) -> None:
    transit.import_key("site-a", "hmac", SECRET)
    transit.import_key("robot-a", "hmac", SECRET)
    policy = name("tpol")  # type: ignore[operator]
    vault_client.sys.create_or_update_acl_policy(
        policy, f'path "{transit.path}/hmac/site-*" {{ capabilities = ["update"] }}'
    )
    try:
        token = vault_client.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"]
        limited = hvac.Client(url=vault_client.url, token=token)
        assert limited.write(f"{transit.path}/hmac/site-a", input=_b64(b"x"))["data"]["hmac"]
        for denied in ("hmac/robot-a", "export/hmac-key/site-a", "backup/site-a", "keys/site-a"):
            with pytest.raises(hvac.exceptions.Forbidden):
                if denied.startswith("hmac"):
                    limited.write(f"{transit.path}/{denied}", input=_b64(b"x"))
                else:
                    limited.read(f"{transit.path}/{denied}")
    finally:
        vault_client.sys.delete_acl_policy(policy)
