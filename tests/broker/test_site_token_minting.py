"""POST /v1/site-tokens mints with the calling site backend's own token (broker/site_tokens.py):
the broker's identity cannot create site tokens (`policy check`, tests/policies/
test_escalation_live.py), so what a caller's token may not do, the broker cannot do for it.
Runs on the session Vault (devvault, or a real Vault when KEYBROKER_TEST_VAULT_* is set).
"""

from __future__ import annotations

from broker.layout import SITE_BACKEND_POLICY
from tests.broker.helpers import assert_envelope
from tests.fixtures.broker import BrokerEnv


def test_a_batch_site_backend_token_is_refused_with_vaults_reason(broker_env: BrokerEnv) -> None:
    """A batch token holds the marker but cannot create tokens (token_store.go: "batch
    tokens cannot create more tokens"). With the broker's own token the mint would not
    depend on the caller's token type at all: the 403 proves the caller's token is used."""
    batch = broker_env.root.auth.token.create(
        policies=[SITE_BACKEND_POLICY], ttl="5m", no_default_policy=True, type="batch"
    )["auth"]["client_token"]
    with broker_env.http(batch) as http:
        answer = http.post("/v1/site-tokens", json={})
    body = assert_envelope(answer, 403, "forbidden")
    assert "batch tokens cannot create more tokens" in body["message"]
    assert batch not in answer.text and batch not in broker_env.audit.text()


def test_the_minted_token_comes_from_the_role_and_names_no_broker_parent(
    broker_env: BrokerEnv,
) -> None:
    with broker_env.http("site_backend") as http:
        minted = http.post("/v1/site-tokens", json={"ttl": "1m"})
    assert minted.status_code == 201, minted.text
    looked_up = broker_env.root.auth.token.lookup(minted.json()["token"])["data"]
    assert looked_up["type"] == "batch" and looked_up["orphan"] is True
    assert looked_up["path"].startswith(f"auth/token/create/{broker_env.settings.site_token_role}")
    assert broker_env.site_backend_token not in broker_env.audit.text()
