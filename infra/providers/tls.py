"""The stack's own certificate authority and one server certificate per Vault node.

Made with `cryptography` (ECDSA P-256). The CA's private key is used once to sign and
then dropped, so nothing can ever be signed with it again; adding a node re-issues the
whole bundle (a replacement). Node private keys are outputs marked secret, so Pulumi
state holds them encrypted (passphrase or KMS secrets provider).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi import dynamic

from infra.providers.diffs import changed, diff_result

KEYS_OUTPUT = "key_pems"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "keybroker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_bundle(ca_name: str, nodes: list[list[str]], validity_days: int) -> dict[str, Any]:
    """A CA certificate and, per node, a certificate for its hosts and its key (PEM)."""
    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate small clock skew
    until = now + timedelta(days=validity_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs: list[str] = []
    keys: list[str] = []
    for hosts in nodes:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        certs.append(cert.public_bytes(serialization.Encoding.PEM).decode())
        keys.append(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
        )
    return {
        "ca_cert_pem": ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        "cert_pems": certs,
        KEYS_OUTPUT: keys,
        "not_after": until.isoformat(),
    }


class TlsBundleProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        bundle = issue_bundle(
            props["ca_name"], [list(h) for h in props["nodes"]], int(props["validity_days"])
        )
        return dynamic.CreateResult(
            f"{props['ca_name']}@{bundle['not_after']}", {**props, **bundle}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return diff_result(changed(olds, news, ("ca_name", "nodes", "validity_days")))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """Lives in state only; refresh shows the days the certificates have left."""
        days: int | None = None
        if props.get("not_after"):
            left = datetime.fromisoformat(str(props["not_after"])) - datetime.now(UTC)
            days = max(0, left.days)
        return dynamic.ReadResult(id_, {**props, "days_left": days})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # lives in state only


class TlsBundle(dynamic.Resource, module="keybroker", name="TlsBundle"):
    ca_cert_pem: pulumi.Output[str]
    cert_pems: pulumi.Output[list[str]]
    key_pems: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        ca_name: str,
        nodes: list[list[str]],
        validity_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "ca_name": ca_name,
            "nodes": nodes,
            "validity_days": validity_days,
            "ca_cert_pem": None,
            "cert_pems": None,
            KEYS_OUTPUT: None,
            "not_after": None,
            "days_left": None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=[KEYS_OUTPUT])
        super().__init__(
            TlsBundleProvider(), name, props, pulumi.ResourceOptions.merge(secret_opts, opts)
        )
