"""Secrets Manager records for Vault's init material, encrypted with the unseal KMS key.

Only ARNs leave this module; secret values are written and read here and nowhere in
Pulumi state.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# What a record holds between its creation and the write of its material.
PENDING_RECORD = json.dumps({"pending": True})
PUT_ATTEMPTS = 5


def find_secret(sm: Any, name: str) -> str | None:
    """ARN of the live (not pending deletion) secret `name`, or None."""
    try:
        described = sm.describe_secret(SecretId=name)
    except sm.exceptions.ResourceNotFoundException:
        return None
    if described.get("DeletedDate"):
        return None
    return str(described["ARN"])


def create_secret(sm: Any, name: str, value: str, kms_key_id: str, description: str) -> str:
    """Create `name` holding `value`; an existing live secret of that name is an error."""
    answer = sm.create_secret(
        Name=name,
        SecretString=value,
        KmsKeyId=kms_key_id,
        Description=description,
        Tags=[{"Key": "managed-by", "Value": "keybroker-pulumi"}],
    )
    return str(answer["ARN"])


def delete_secret(sm: Any, arn: str, recovery_window_days: int) -> None:
    """Delete `arn`: after `recovery_window_days` (7-30), or at once when 0."""
    kwargs: dict[str, Any] = (
        {"ForceDeleteWithoutRecovery": True}
        if recovery_window_days == 0
        else {"RecoveryWindowInDays": max(7, min(30, recovery_window_days))}
    )
    with contextlib.suppress(sm.exceptions.ResourceNotFoundException):
        sm.delete_secret(SecretId=arn, **kwargs)


def read_record(sm: Any, arn: str) -> dict[str, Any] | None:
    """The JSON object secret `arn` holds, or None when it holds anything else; every
    keybroker record (root token, issuer, init material) is such an object."""
    value = sm.get_secret_value(SecretId=arn).get("SecretString") or ""
    try:
        record = json.loads(value)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def is_pending(sm: Any, arn: str) -> bool:
    """Whether record `arn` still holds PENDING_RECORD (no material written yet)."""
    record = read_record(sm, arn)
    return record is not None and record.get("pending") is True


def put_with_retries(sm: Any, arn: str, value: str) -> None:
    """Write `value` as the current version of `arn`, retrying transient failures: it is
    material Vault shows only once."""
    for attempt in range(PUT_ATTEMPTS):
        try:
            sm.put_secret_value(SecretId=arn, SecretString=value)
            return
        except (ClientError, BotoCoreError):
            if attempt == PUT_ATTEMPTS - 1:
                raise
            time.sleep(2.0**attempt)
