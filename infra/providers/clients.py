"""Client factories and the Secrets Manager records the providers share.

AWS credentials come from boto3's default chain (environment, profile, instance role);
the Vault token comes from Secrets Manager at run time. Neither is ever a resource
input or output, so neither reaches Pulumi state.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac
import pulumi
import requests
from botocore.exceptions import ClientError

from infra.providers.secrets import read_record

VAULT_TIMEOUT_S = 15


class ProviderError(Exception):
    """A provider step failed; the message says what to do and never holds a secret."""


@dataclass(frozen=True)
class AwsTarget:
    region: str
    endpoint_url: str | None = None

    @classmethod
    def from_props(cls, props: dict[str, Any]) -> AwsTarget:
        return cls(region=str(props["region"]), endpoint_url=props.get("endpoint_url") or None)

    def client(self, service: str) -> Any:
        import boto3  # imported here: the provider is pickled, clients never are

        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)


@contextmanager
def vault_client(
    address: str, ca_cert_pem: str | None, token: str | None = None
) -> Iterator[hvac.Client]:
    """An hvac client for `address` that trusts only the stack's CA (when given)."""
    ca_path: str | None = None
    try:
        verify: bool | str = True
        if ca_cert_pem:
            with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
                handle.write(ca_cert_pem)
                ca_path = handle.name
            verify = ca_path
        client = hvac.Client(url=address, token=token, verify=verify, timeout=VAULT_TIMEOUT_S)
        try:
            yield client
        finally:
            client.adapter.close()
    finally:
        if ca_path is not None:
            os.unlink(ca_path)


def props_vault_client(
    props: dict[str, Any], token: str | None = None
) -> AbstractContextManager[hvac.Client]:
    """`vault_client` for a resource's `address` and `ca_cert_pem` properties."""
    return vault_client(props["address"], props.get("ca_cert_pem"), token)


@dataclass(frozen=True)
class VaultAccess:
    """Where Vault is, which CA it shows, and the AWS region (and endpoint) of its Secrets
    Manager records: the inputs every Vault-facing resource shares."""

    address: pulumi.Input[str]
    ca_cert_pem: pulumi.Input[str]
    region: str
    endpoint_url: str | None = None

    def props(self, **more: Any) -> dict[str, Any]:
        """A resource's properties: these four (read back by `props_vault_client` and
        `AwsTarget.from_props`) plus the resource's own `more`."""
        return {
            "address": self.address,
            "ca_cert_pem": self.ca_cert_pem,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            **more,
        }


READY_TIMEOUT_S = 120.0
# sys/health (docs/facts/vault.md §4.5): 200 active, 429 unsealed standby, 473 performance
# standby (standbys forward requests to the leader); 501 not initialised, 503 sealed.
_READY = (200, 429, 473)


def wait_until_active(client: hvac.Client, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until Vault is initialised and unsealed: right after init, a node needs a
    few seconds to auto-unseal through the KMS seal and elect a leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            # hvac returns the JSON body on 200 and the raw response otherwise.
            answer = client.sys.read_health_status(method="GET")
            status = getattr(answer, "status_code", 200)
        except requests.exceptions.ConnectionError:
            status = 0
        if status in _READY:
            return
        if time.monotonic() >= deadline:
            raise ProviderError(
                f"Vault at {client.url} is not ready after {timeout_s:.0f}s"
                f" (sys/health answered {status or 'nothing'})"
            )
        time.sleep(1.0)


# --- the root-token record in Secrets Manager --------------------------------------------
# Stored as JSON so that revocation can be recorded in place of the token.


def root_token_record(token: str) -> str:
    return json.dumps({"root_token": token, "revoked_at": None})


def revoked_record() -> str:
    return json.dumps({"root_token": None, "revoked_at": datetime.now(UTC).isoformat()})


def read_root_token(aws: AwsTarget, secret_arn: str) -> str:
    """The initial root token from Secrets Manager; a clear error once it is revoked."""
    record = read_record(aws.client("secretsmanager"), secret_arn)
    if record is None:
        raise ProviderError(f"secret {secret_arn} does not hold a keybroker root-token record")
    token = record.get("root_token")
    if not token:
        raise ProviderError(
            f"the initial root token in {secret_arn} was revoked; to change Vault's"
            " configuration, generate a new root token with the recovery keys"
            ' (vault operator generate-root) and store it there as {"root_token": "<token>"}'
        )
    return str(token)


def props_root_token(props: dict[str, Any]) -> str:
    """The root token named by a resource's `token_secret_arn` property."""
    return read_root_token(AwsTarget.from_props(props), props["token_secret_arn"])


def root_token_for_cleanup(props: dict[str, Any], left_behind: str) -> str | None:
    """The root token for a delete step, or None with a warning naming what is
    `left_behind`: a delete must not fail once the token is revoked (prod) or its
    record is gone."""
    try:
        return props_root_token(props)
    except (ProviderError, ClientError) as exc:
        pulumi.log.warn(f"{left_behind}: {exc}")
        return None
