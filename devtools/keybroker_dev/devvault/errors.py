"""Errors that become Vault error responses.

Vault answers every status >= 400 with `{"errors": [...]}` (docs/facts/vault.md §4.2,
sdk/logical/response_util.go): 400 invalid request, 403 permission denied, 404
unsupported path or missing resource, 405 unsupported operation, 415 bad PATCH
content type, 503 sealed.
"""

from __future__ import annotations

from typing import Any


class VaultError(Exception):
    """An error response: HTTP status, the `errors` list and optionally a full body."""

    def __init__(self, status: int, *errors: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {'; '.join(errors)}")
        self.status = status
        self.errors = list(errors)
        self.body = body  # Vault sometimes answers an error status with a normal body


def bad_request(message: str) -> VaultError:
    return VaultError(400, message)


def permission_denied() -> VaultError:
    # Vault's policy denial text (docs/facts/vault.md §4.2; hashicorp/vault#6554).
    return VaultError(403, "1 error occurred:\n\t* permission denied\n\n")


def not_found(*errors: str) -> VaultError:
    return VaultError(404, *errors)


def sealed() -> VaultError:
    return VaultError(503, "Vault is sealed")
