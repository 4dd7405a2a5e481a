"""Entry point of the broker image: obtain the broker's Vault credential, then serve.

The deployment delivers the credential response-wrapped (docs/facts/vault.md §4.4): a
single-use wrapping token in KEYBROKER_VAULT_WRAPPED_CREDENTIAL_FILE, uploaded through
a never-started seed container. The launcher unwraps it against Vault and deletes the
file. The wrapped response is either

- a periodic token (`auth.client_token`, what the Pulumi stack issues): it is kept in
  KEYBROKER_VAULT_TOKEN_SINK_FILE (mode 0600, the broker's own volume) so that a restart
  of the same container finds it again, and a timer thread renews it every third of
  its period, so an idle broker never lets it lapse; or
- an AppRole secret-id (`data.secret_id`), handed to the broker's AppRole login.

Either way the secret lives in this process's environment only (read by
load_settings()), never in the container's, and is never logged. A wrapping token
that was already unwrapped fails loudly (that is what wrapping is for). Without the
variables, the launcher just runs `keybroker serve`.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions
import requests

WRAPPED_FILE_ENV = "KEYBROKER_VAULT_WRAPPED_CREDENTIAL_FILE"
SINK_FILE_ENV = "KEYBROKER_VAULT_TOKEN_SINK_FILE"
VAULT_TIMEOUT_S = 15


class LaunchError(Exception):
    """The credential could not be obtained; the message never holds a token."""


class VaultUnreachable(LaunchError):
    """Vault did not answer; worth waiting for (the broker reports it on /readyz)."""


@dataclass(frozen=True)
class Credential:
    kind: str  # "token" or "secret_id"
    value: str


def _client(vault_addr: str, ca_file: str | None, token: str) -> hvac.Client:
    return hvac.Client(url=vault_addr, token=token, verify=ca_file or True, timeout=VAULT_TIMEOUT_S)


def unwrap_credential(path: Path, vault_addr: str, ca_file: str | None) -> Credential:
    """The credential inside the wrapping token stored at `path`; the file is removed."""
    try:
        wrapping_token = path.read_text().strip()
    except FileNotFoundError:
        raise LaunchError(
            f"{path} is missing: the wrapped credential was used by an earlier start;"
            " issue a new one (change keybroker:brokerCredentialRotation, then pulumi up)"
        ) from None
    client = _client(vault_addr, ca_file, wrapping_token)
    try:
        answer = client.sys.unwrap()
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
        raise LaunchError(
            "the wrapping token was refused (expired, or already unwrapped by someone"
            " else: treat that as a possible leak)"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise LaunchError(f"cannot reach Vault at {vault_addr}: {type(exc).__name__}") from None
    finally:
        client.adapter.close()
    try:
        path.unlink(missing_ok=True)
    except PermissionError:
        # Already worthless (wrapping tokens are single-use); say so and carry on.
        print(f"keybroker launcher: could not remove {path} (used token)", file=sys.stderr)
    token = (answer.get("auth") or {}).get("client_token")
    if token:
        return Credential("token", str(token))
    secret_id = (answer.get("data") or {}).get("secret_id")
    if secret_id:
        return Credential("secret_id", str(secret_id))
    raise LaunchError("the wrapped response holds neither a token nor a secret_id")


def unwrap_secret_id(path: Path, vault_addr: str, ca_file: str | None) -> str:
    """The AppRole secret-id wrapped at `path` (see unwrap_credential)."""
    credential = unwrap_credential(path, vault_addr, ca_file)
    if credential.kind != "secret_id":
        raise LaunchError("the wrapped response holds no secret_id")
    return credential.value


def store_token(sink: Path, token: str) -> None:
    """Keep the token for the next start of this container (owner-only file)."""
    fd = os.open(sink, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)


def renew_period_s(vault_addr: str, ca_file: str | None, token: str) -> float:
    """Renew `token` once; the seconds until the next renewal is due (a third of its
    TTL). Raises LaunchError when Vault refuses it (expired or revoked)."""
    client = _client(vault_addr, ca_file, token)
    try:
        auth = client.auth.token.renew_self()["auth"]
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
        raise LaunchError(
            "Vault refused the broker's token (expired or revoked): issue a new one"
            " (change keybroker:brokerCredentialRotation, then pulumi up)"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise VaultUnreachable(
            f"cannot reach Vault at {vault_addr}: {type(exc).__name__}"
        ) from None
    finally:
        client.adapter.close()
    return max(1.0, int(auth.get("lease_duration") or 0) / 3)


def keep_renewed(
    vault_addr: str, ca_file: str | None, token: str, first_wait_s: float, stop: threading.Event
) -> threading.Thread:
    """A daemon thread renewing `token` every third of its TTL until `stop` is set.
    Failures are retried a minute later; the broker also renews the token on use."""

    def run() -> None:
        wait = first_wait_s
        while not stop.wait(wait):
            try:
                wait = renew_period_s(vault_addr, ca_file, token)
            except LaunchError as exc:
                print(f"keybroker launcher: token renewal failed: {exc}", file=sys.stderr)
                wait = 60.0

    thread = threading.Thread(target=run, name="token-renewal", daemon=True)
    thread.start()
    return thread


def obtain_credential(
    wrapped: Path | None, sink: Path | None, vault_addr: str, ca_file: str | None
) -> Credential | None:
    """A newly delivered credential wins; else the token kept by an earlier start."""
    if wrapped is not None and (sink is None or wrapped.exists()):
        credential = unwrap_credential(wrapped, vault_addr, ca_file)
        if credential.kind == "token" and sink is not None:
            store_token(sink, credential.value)
        return credential
    if sink is not None:
        try:
            return Credential("token", sink.read_text().strip())
        except FileNotFoundError:
            raise LaunchError(
                f"no credential: neither {wrapped} nor {sink} exists; issue a new one"
                " (change keybroker:brokerCredentialRotation, then pulumi up)"
            ) from None
    return None


def main() -> int:
    wrapped = os.environ.pop(WRAPPED_FILE_ENV, None)
    sink = os.environ.pop(SINK_FILE_ENV, None)
    vault_addr = os.environ.get("KEYBROKER_VAULT_ADDR", "http://127.0.0.1:8200")
    ca_file = os.environ.get("KEYBROKER_VAULT_CACERT")
    try:
        credential = obtain_credential(
            Path(wrapped) if wrapped else None, Path(sink) if sink else None, vault_addr, ca_file
        )
        if credential is not None and credential.kind == "token":
            try:
                first_wait = renew_period_s(vault_addr, ca_file, credential.value)
            except VaultUnreachable as exc:  # a kept token, Vault down: serve, retry soon
                print(f"keybroker launcher: {exc}; renewing later", file=sys.stderr)
                first_wait = 60.0
            keep_renewed(vault_addr, ca_file, credential.value, first_wait, threading.Event())
    except LaunchError as exc:
        print(f"keybroker launcher: {exc}", file=sys.stderr, flush=True)
        return 2
    # This process's environment only (not the container's): read by load_settings().
    if credential is not None and credential.kind == "token":
        os.environ["KEYBROKER_VAULT_TOKEN"] = credential.value
    elif credential is not None:
        os.environ["KEYBROKER_VAULT_SECRET_ID"] = credential.value
    from broker.api.server import serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
