"""The real-Vault run of the conformance suite (docs/facts/vault.md; issue 3 acceptance).

With KEYBROKER_TEST_VAULT_ADDR and KEYBROKER_TEST_VAULT_TOKEN set, every test of this
folder that uses `endpoint` also runs against that Vault; this test checks the target
is reachable, unsealed and the token is a root token. Otherwise it is skipped with
that reason (one line instead of one skip per test).
"""

from __future__ import annotations

import pytest

from tests.fixtures.vault import NO_REAL_VAULT_SKIP, real_vault_from_env


def test_real_vault_is_reachable_with_a_root_token() -> None:
    real = real_vault_from_env()
    if real is None:
        pytest.skip(NO_REAL_VAULT_SKIP)
    client = real.client()
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False
    assert "root" in client.auth.token.lookup_self()["data"]["policies"]
