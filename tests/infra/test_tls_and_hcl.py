"""The stack's CA and node certificates (cryptography), and the rendered server HCL
(docs/facts/vault.md §6), parsed back with the project's HCL parser."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from infra import vault_hcl
from infra.addresses import deploy_host, url_host
from infra.providers.tls import KEYS_OUTPUT, TlsBundleProvider, issue_bundle
from policies.pack import props as p

NODES = [["kb-vault-0", "kb-vault", "127.0.0.1"], ["kb-vault-1", "kb-vault", "127.0.0.1"]]


def test_bundle_chains_to_its_ca_with_the_right_names() -> None:
    bundle = issue_bundle("kb CA", NODES, validity_days=30)
    ca = x509.load_pem_x509_certificate(bundle["ca_cert_pem"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    for hosts, pem, key_pem in zip(NODES, bundle["cert_pems"], bundle[KEYS_OUTPUT], strict=True):
        cert = x509.load_pem_x509_certificate(pem.encode())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == hosts[:2]
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert "PRIVATE KEY" in key_pem and key_pem not in pem
        assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_ca_key_is_not_kept() -> None:
    bundle = issue_bundle("kb CA", NODES[:1], validity_days=1)
    assert len(bundle[KEYS_OUTPUT]) == 1  # only the node's key; the CA key is dropped


def test_provider_diff_replaces_on_new_hosts_only() -> None:
    provider = TlsBundleProvider()
    props = {"ca_name": "kb CA", "nodes": NODES, "validity_days": 30.0}
    created = provider.create(dict(props))
    assert provider.diff(created.id, created.outs, dict(props)).changes is False
    more = provider.diff(created.id, created.outs, {**props, "nodes": [*NODES, ["kb-vault-2"]]})
    assert more.replaces == ["nodes"]


@pytest.mark.parametrize("nodes", [1, 3])
def test_server_hcl(nodes: int) -> None:
    for index in range(nodes):
        text = vault_hcl.render(
            vault_hcl.ServerConfig(
                node_index=index,
                addresses=tuple(vault_hcl.internal_address("kb", i) for i in range(nodes)),
                host_prefix="kb",
                disable_mlock=True,
                kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/k",
                aws_region="eu-west-1",
                aws_endpoint_url="http://127.0.0.1:5000",
            )
        )
        assert p.attribute(text, "disable_mlock") is True
        assert p.attribute(text, "api_addr") == f"https://kb-vault-{index}:8200"
        (storage,) = p.blocks(text, "storage")
        assert storage["__label__"] == "raft" and storage["node_id"] == f"kb-vault-{index}"
        joins = storage.get("retry_join")
        peers = [] if joins is None else joins if nodes > 2 else [joins]
        assert len(peers) == nodes - 1
        for peer in peers:
            assert peer["leader_api_addr"].startswith("https://kb-vault-")
            assert peer["leader_ca_cert_file"] == vault_hcl.CA_FILE
            assert f"kb-vault-{index}" not in peer["leader_api_addr"]
        (listener,) = p.blocks(text, "listener")
        assert listener["tls_min_version"] == "tls12" and "tls_disable" not in listener
        (seal,) = p.blocks(text, "seal")
        assert seal == {
            "__label__": "awskms",
            "region": "eu-west-1",
            "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/k",
            "endpoint": "http://127.0.0.1:5000",
        }
        assert p.attribute(text, "telemetry") == {
            "prometheus_retention_time": "86400s",
            "disable_hostname": True,
        }


def test_server_hcl_across_hosts_advertises_published_addresses() -> None:
    addresses = tuple(
        vault_hcl.published_address("kb", i, f"10.0.{i}.11", 8200 + i, 8300 + i) for i in range(3)
    )
    text = vault_hcl.render(
        vault_hcl.ServerConfig(
            node_index=1,
            addresses=addresses,
            host_prefix="kb",
            disable_mlock=True,
            kms_key_id="k",
            aws_region="eu-west-1",
        )
    )
    assert p.attribute(text, "api_addr") == "https://10.0.1.11:8201"
    assert p.attribute(text, "cluster_addr") == "https://10.0.1.11:8301"
    (storage,) = p.blocks(text, "storage")
    joins = storage["retry_join"]
    assert [j["leader_api_addr"] for j in joins] == [
        "https://10.0.0.11:8200",
        "https://10.0.2.11:8202",
    ]
    # Certificates name the node; TLS is checked against that name and the stack's CA.
    assert [j["leader_tls_servername"] for j in joins] == ["kb-vault-0", "kb-vault-2"]
    assert all(j["leader_ca_cert_file"] == vault_hcl.CA_FILE for j in joins)


def test_seal_migration_stanza_disables_the_old_seal() -> None:
    """Vault's documented seal migration away from an auto seal: the old seal stanza
    gets disabled = "true" (website/content/docs/concepts/seal.mdx)."""
    config = vault_hcl.ServerConfig(
        node_index=0,
        addresses=(vault_hcl.internal_address("kb", 0),),
        host_prefix="kb",
        disable_mlock=True,
        kms_key_id="arn:old",
        aws_region="eu-west-1",
        seal_disabled=True,
    )
    (seal,) = p.blocks(vault_hcl.render(config), "seal")
    assert seal["disabled"] == "true" and seal["kms_key_id"] == "arn:old"


def test_two_audit_devices_on_separate_sinks() -> None:
    devices = vault_hcl.audit_devices()
    assert len({d.path for d in devices}) == 2
    assert {d.options["file_path"] for d in devices} == {"/vault/logs/audit.log", "stdout"}


@pytest.mark.parametrize(
    ("publish", "url"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::1", "[::1]"), ("::", "127.0.0.1")],
)
def test_deploy_addresses(publish: str, url: str) -> None:
    assert url_host(deploy_host(publish)) == url


def test_tls_read_shows_days_left() -> None:
    provider = TlsBundleProvider()
    created = provider.create({"ca_name": "kb CA", "nodes": NODES, "validity_days": 30.0})
    assert provider.read(created.id, created.outs).outs["days_left"] in (29, 30)
