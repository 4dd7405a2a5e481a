"""Entry point of the broker image: unwrap the AppRole secret-id, then `keybroker serve`.

The deployment uploads a single-use wrapping token (docs/facts/vault.md §4.4) to
KEYBROKER_VAULT_WRAPPED_SECRET_ID_FILE. The launcher unwraps it against Vault, deletes
the file, and hands the secret-id to the broker inside this process only: it is never
a container environment variable, never on disk after start, never logged. A token
that was already unwrapped by someone else fails loudly (that is what wrapping is for).
Without the variable, the launcher just runs `keybroker serve`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hvac
import hvac.exceptions
import requests

WRAPPED_FILE_ENV = "KEYBROKER_VAULT_WRAPPED_SECRET_ID_FILE"


class LaunchError(Exception):
    """The secret-id could not be obtained; the message never holds a token."""


def unwrap_secret_id(path: Path, vault_addr: str, ca_file: str | None) -> str:
    """The secret-id inside the wrapping token stored at `path`; the file is removed."""
    try:
        wrapping_token = path.read_text().strip()
    except FileNotFoundError:
        raise LaunchError(
            f"{path} is missing: the wrapped secret-id was used by an earlier start;"
            " issue a new one (change keybroker:brokerSecretIdRotation, then pulumi up)"
        ) from None
    client = hvac.Client(url=vault_addr, token=wrapping_token, verify=ca_file or True, timeout=15)
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
    secret_id = (answer.get("data") or {}).get("secret_id")
    if not secret_id:
        raise LaunchError("the wrapped response holds no secret_id")
    return str(secret_id)


def main() -> int:
    wrapped = os.environ.pop(WRAPPED_FILE_ENV, None)
    if wrapped:
        try:
            secret_id = unwrap_secret_id(
                Path(wrapped),
                os.environ.get("KEYBROKER_VAULT_ADDR", "http://127.0.0.1:8200"),
                os.environ.get("KEYBROKER_VAULT_CACERT"),
            )
        except LaunchError as exc:
            print(f"keybroker launcher: {exc}", file=sys.stderr, flush=True)
            return 2
        # This process's environment only (not the container's): read by load_settings().
        os.environ["KEYBROKER_VAULT_SECRET_ID"] = secret_id
    from broker.api.server import serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
