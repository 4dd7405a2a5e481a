"""Webhooks survive a broker restart (docs/key-health.md "Webhooks"): each event is kept in
Vault as a metadata-only record under `<mount>/metadata/webhooks/<id>` until every
receiver has it; a new broker on the same Vault resends what the last one left, or
abandons it past `KEYBROKER_WEBHOOK_MAX_AGE`. The brokers log in with their own AppRole,
so the grants of policies/vault/keybroker-broker.hcl are exercised too."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import pytest

from broker.api.server import start_in_thread
from broker.webhook_records import WEBHOOKS_DIR, url_id
from broker.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import AuditCapture, BrokerEnv, build_broker_env, new_account
from tests.health.conftest import WEBHOOK_SECRET, Receiver, own_key, wait_for

T = TypeVar("T")
DOWN = 10**9  # Receiver.fail_first: every delivery answered 500
URL_CANARY = "hooktoken-canary-5e1f0c"  # a receiver URL may carry a token of its own


def _records(env: BrokerEnv) -> dict[str, dict[str, str]]:
    """Every webhook record in Vault (root token): event id -> custom_metadata."""
    kv = env.root.secrets.kv.v2
    try:
        names = kv.list_secrets(WEBHOOKS_DIR, mount_point=env.mount)["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return {}
    found = {}
    for name in names:
        try:  # the broker may delete it between the LIST and this read
            meta = kv.read_secret_metadata(f"{WEBHOOKS_DIR}/{name}", mount_point=env.mount)
        except hvac.exceptions.InvalidPath:
            continue
        found[name] = meta["data"]["custom_metadata"]
    return found


def _broker(devvault: Any, sandbox: SandboxServer, urls: list[str], **overrides: Any) -> BrokerEnv:
    values: dict[str, Any] = {
        "verify_interval": 0.5,  # the sweep turns a new key `unverified` within ~1.5 s
        "webhook_urls": urls,
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_retry_delays": [60.0],  # the broker stops long before its retry
    }
    return build_broker_env(
        devvault.addr, devvault.root_token, sandbox.exchange_urls, **(values | overrides)
    )


def _status_change(env: BrokerEnv, sandbox: SandboxServer) -> tuple[str, dict[str, str]]:
    """Store a key, wait for the sweep's status change: (account, the key's credentials)."""
    account = new_account("hook")
    key = own_key(sandbox)
    with env.http("intake") as http:
        put = http.put(
            f"/v1/accounts/{account}/keys/okx/robot", json={"name": "r", **key.credentials()}
        )
    assert put.status_code == 201, put.text
    wait_for(
        "the status change",
        lambda: [x for x in env.audit_lines() if x["event"] == "key.status_changed"],
    )
    return account, key.credentials()


def _leave_pending_event(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver, url: str
) -> tuple[BrokerEnv, str, dict[str, str], dict[str, str]]:
    """A broker whose one event the receiver refused, stopped before its retry:
    (env, event id, the record's custom_metadata, the key's credentials)."""
    receiver.fail_first = DOWN
    env = _broker(devvault, sandbox, [url])
    try:
        account, credentials = _status_change(env, sandbox)
        wait_for("the refused first attempt", lambda: receiver.answered)
        records = _records(env)
        assert len(records) == 1
        ((event_id, custom),) = records.items()
        assert json.loads(custom["event.account"]) == account
    finally:
        env.running.stop()
    return env, event_id, custom, credentials


def _restart(env: BrokerEnv, **update: Any) -> tuple[Any, AuditCapture]:
    audit = AuditCapture()
    settings = env.settings.model_copy(update={"verify_interval": 3600.0, **update})
    return start_in_thread(settings, audit_stream=audit), audit


def test_an_event_pending_at_stop_is_delivered_by_the_next_broker(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver
) -> None:
    """Receiver down -> broker stopped -> receiver up -> a new broker on the same Vault
    delivers the same event (same id, same body), and its record is gone. On the code
    before webhook records this failed: nothing was in Vault and nothing was resent."""
    url = f"{receiver.url}/{URL_CANARY}"
    env, event_id, custom, credentials = _leave_pending_event(devvault, sandbox, receiver, url)
    first_body = receiver.received[0][1]
    assert json.loads(first_body)["id"] == event_id

    # Canaries: the record holds the event's fields, creation time and nothing else; no
    # secret, token, webhook secret or receiver URL anywhere in it.
    assert set(custom) == {f"event.{k}" for k in json.loads(first_body)} | {"webhook.created_at"}
    stored = json.dumps(custom)
    canaries = [
        *credentials.values(),
        env.intake_token,
        env.site_backend_token,
        env.settings.vault_secret_id.get_secret_value(),  # type: ignore[union-attr]
        WEBHOOK_SECRET,
        URL_CANARY,
        receiver.url,
    ]
    assert not [c for c in canaries if c in stored]

    receiver.fail_first = len(receiver.answered)  # the receiver is back
    restarted, audit = _restart(env)
    try:
        wait_for("the resent event", receiver.bodies)
        wait_for("the record's deletion", lambda: not _records(env))
        delivered = [
            (headers, body)
            for (headers, body), status in zip(receiver.received, receiver.answered, strict=True)
            if status == 200
        ]
        assert len(delivered) == 1
        headers, body = delivered[0]
        assert body == first_body  # byte for byte: same id, same fields
        assert headers[EVENT_ID_HEADER] == event_id
        assert verify_signature(WEBHOOK_SECRET.encode(), headers[SIGNATURE_HEADER], body)
        line = next(x for x in audit.lines() if x["event"] == "webhook.delivery")
        assert (line["event_id"], line["ok"], line["replayed"]) == (event_id, True, True)
    finally:
        restarted.stop()
    assert not [c for c in canaries if c in audit.text()]


def test_a_record_older_than_the_max_age_is_abandoned_at_start(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver
) -> None:
    env, event_id, _, _ = _leave_pending_event(devvault, sandbox, receiver, receiver.url)
    sent = len(receiver.received)
    receiver.fail_first = sent  # up again, but the event is too old to resend
    time.sleep(0.3)
    restarted, audit = _restart(env, webhook_max_age=0.2)
    try:
        line = wait_for(
            "the abandonment",
            lambda: [x for x in audit.lines() if x["event"] == "webhook.abandoned"],
        )[0]
        assert (line["event_id"], line["reason"]) == (event_id, "max_age")
        assert line["host"] == receiver.url.split("/")[2]
        wait_for("the record's deletion", lambda: not _records(env))
    finally:
        restarted.stop()
    assert len(receiver.received) == sent  # nothing was resent


def test_a_delivered_event_leaves_no_record(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver
) -> None:
    """The ordinary path: recorded before the first attempt, deleted after the 2xx that
    follows a failed attempt (the record existed while the retry was pending)."""
    receiver.fail_first = 1
    env = _broker(devvault, sandbox, [receiver.url], webhook_retry_delays=[1.0])
    try:
        _status_change(env, sandbox)
        wait_for("the refused first attempt", lambda: receiver.answered)
        assert len(_records(env)) == 1  # pending: kept in Vault
        wait_for("the retry", receiver.bodies)
        wait_for("the record's deletion", lambda: not _records(env))
        lines = [x for x in env.audit_lines() if x["event"].startswith("webhook.")]
        assert [(x["event"], x["attempt"], x["recorded"]) for x in lines] == [
            ("webhook.delivery", 1, True),
            ("webhook.delivery", 2, True),
        ]
    finally:
        env.running.stop()


def test_vault_down_when_recording_delivers_from_memory_and_says_so(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail_first = 0
    caplog.set_level(logging.INFO, logger="keybroker.webhooks")
    env = _broker(devvault, sandbox, [receiver.url])
    try:
        # Let the start-up replay's LIST pass (it logs), then fail the record write only.
        wait_for(
            "the start-up replay",
            lambda: [r for r in caplog.records if r.getMessage().startswith("webhook replay: 0")],
        )
        devvault.faults.fail_next(1, 503, path_prefix=f"{env.mount}/metadata/{WEBHOOKS_DIR}/")
        _status_change(env, sandbox)
        body = wait_for("the delivery", receiver.bodies)[0]
        line = next(x for x in env.audit_lines() if x["event"] == "webhook.not_recorded")
        assert (line["event_id"], line["error"]) == (body["id"], "VaultUnavailable")
        attempt = next(x for x in env.audit_lines() if x["event"] == "webhook.delivery")
        assert (attempt["ok"], attempt["recorded"]) == (True, False)
        assert not _records(env)
    finally:
        devvault.faults.reset()
        env.running.stop()


def test_a_restart_resends_only_to_the_receivers_that_lacked_the_event(
    devvault: Any, sandbox: SandboxServer, receiver: Receiver
) -> None:
    """Two URLs, one up and one down: the record notes the one that answered 2xx (by an
    HMAC of its URL), and the next broker resends to the other one only."""
    up, down = f"{receiver.url}/up", f"{receiver.url}/down"
    receiver.fail_first = 0
    paths: list[str] = []

    def answer_by_path(headers: dict[str, str], path: str) -> int:
        paths.append(path)
        return 200 if path.endswith("/up") else 500

    receiver.decide = answer_by_path
    env = _broker(devvault, sandbox, [up, down])
    try:
        _status_change(env, sandbox)
        wait_for("both first attempts", lambda: len(paths) >= 2)
        record = wait_for("the receiver noted in the record", lambda: _delivered(env))
        assert record == url_id(WEBHOOK_SECRET.encode(), up)  # the URL itself is not kept
    finally:
        env.running.stop()
    paths.clear()
    receiver.decide = lambda headers, path: paths.append(path) or 200  # type: ignore[func-returns-value]
    restarted, _ = _restart(env)
    try:
        wait_for("the record's deletion", lambda: not _records(env))
        assert paths == ["/hook/down"]
    finally:
        restarted.stop()


def _delivered(env: BrokerEnv) -> str | None:
    records = _records(env)
    return next(iter(records.values())).get("webhook.delivered") if records else None
