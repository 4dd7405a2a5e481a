"""retry_kv_upgrade: the transient 400 of a just-enabled KV v2 mount on Vault < 1.12
(hashicorp/vault-plugin-secrets-kv#75) is retried; any other error is not."""

from __future__ import annotations

import hvac.exceptions
import pytest

from broker.bootstrap import retry_kv_upgrade

UPGRADING = (
    "Upgrading from non-versioned to versioned data. This backend will be unavailable"
    " for a brief period and will resume service shortly."
)


def _flaky(failures: list[Exception]):
    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    return call


def test_retries_while_the_mount_upgrades() -> None:
    sleeps: list[float] = []
    errors = [hvac.exceptions.InvalidRequest(UPGRADING) for _ in range(3)]
    assert retry_kv_upgrade(_flaky(errors), sleep=sleeps.append, delay=0.25) == "ok"
    assert sleeps == [0.25, 0.25, 0.25]


def test_gives_up_after_the_last_attempt() -> None:
    errors = [hvac.exceptions.InvalidRequest(UPGRADING) for _ in range(5)]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="Upgrading"):
        retry_kv_upgrade(_flaky(errors), attempts=3, sleep=lambda _: None)
    assert len(errors) == 2


def test_other_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    errors = [hvac.exceptions.InvalidRequest("no data provided")]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no data provided"):
        retry_kv_upgrade(_flaky(errors), sleep=sleeps.append)
    assert sleeps == []
