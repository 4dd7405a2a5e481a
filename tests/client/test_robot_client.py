"""RobotKeyClient against Vault (devvault, or a real Vault through `vault_client`).

Pins: AppRole login and re-login before expiry (docs/facts/vault.md §5), KV v2 reads and
the 404 of a deleted key (§3), new versions from metadata `current_version`, waiting
for a deleted key's replacement with bounded backoff, typed errors without secrets.
"""

from __future__ import annotations

import logging
import socket
import uuid

import hvac
import hvac.api.auth_methods
import pytest

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import (
    AccessDenied,
    InvalidIdentifier,
    KeyNotFound,
    RobotKeyClient,
    VaultUnavailable,
)
from broker.layout import build_layout

MOUNT = "exchange-keys"
CANARY_SECRET = "CANARY-secret-5f1e0c"
CANARY_PASS = "CANARY-pass-77ab"
CANARY_KEY = "CANARYKEY0123456789abcdef"


class FakeTime:
    """A monotonic clock and a sleep that advances it (no real waiting in tests)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


def _write(root: hvac.Client, account: str, exchange: str = "okx", **data: str) -> int:
    secret = {"api_key": CANARY_KEY, "secret": CANARY_SECRET, "passphrase": CANARY_PASS} | data
    answer = root.secrets.kv.v2.create_or_update_secret(
        f"robot/{account}/{exchange}", secret, mount_point=MOUNT
    )
    return int(answer["data"]["version"])


def _delete(root: hvac.Client, account: str, exchange: str = "okx") -> None:
    # What the broker's DELETE does: every version and the metadata go.
    root.secrets.kv.v2.delete_metadata_and_all_versions(
        f"robot/{account}/{exchange}", mount_point=MOUNT
    )


@pytest.fixture
def root(vault_client: hvac.Client) -> hvac.Client:
    apply_layout(vault_client, build_layout())
    return vault_client


@pytest.fixture
def account() -> str:
    return f"robot-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def robot(root: hvac.Client, fake_time: FakeTime) -> RobotKeyClient:
    creds = issue_approle_credentials(root, "keybroker-robot")
    return RobotKeyClient(
        root.url, creds.role_id, creds.secret_id, clock=fake_time.clock, sleep=fake_time.sleep
    )


def test_reads_its_key_and_hides_the_secrets(root, robot, account, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    _write(root, account)
    key = robot.get_key(account, "okx")
    assert (key.api_key, key.secret, key.passphrase) == (CANARY_KEY, CANARY_SECRET, CANARY_PASS)
    assert (key.account, key.exchange, key.role, key.version) == (account, "okx", "robot", 1)
    assert key.ccxt_config() == {
        "apiKey": CANARY_KEY,
        "secret": CANARY_SECRET,
        "password": CANARY_PASS,
    }
    shown = repr(key) + str(key) + repr(robot) + caplog.text
    assert "CANARY" not in shown.replace("CANA...cdef", "")
    assert "CANA...cdef" in repr(key)  # at most the first 4 and last 4 characters


def test_notices_a_new_version(root, robot, account) -> None:
    _write(root, account)
    key = robot.get_key(account, "okx")
    assert not robot.has_new_version(key)
    assert _write(root, account, secret="second") == 2
    assert robot.current_version(account, "okx") == 2
    assert robot.has_new_version(key)
    newer = robot.get_key(account, "okx")
    assert (newer.version, newer.secret) == (2, "second")
    assert not robot.has_new_version(newer)


def test_deleted_key_raises_key_not_found_and_counts_as_changed(root, robot, account) -> None:
    _write(root, account)
    key = robot.get_key(account, "okx")
    _delete(root, account)
    with pytest.raises(KeyNotFound) as caught:
        robot.get_key(account, "okx")
    assert account in str(caught.value)
    assert robot.current_version(account, "okx") is None
    assert robot.has_new_version(key)


def test_waits_for_a_new_key_after_deletion(root, robot, account, fake_time) -> None:
    _write(root, account)
    old = robot.get_key(account, "okx")
    _delete(root, account)
    # The user submits a new key while the robot waits (during its third sleep).
    fake_time.on_sleep = [lambda: None, lambda: None, lambda: _write(root, account, secret="new")]
    key = robot.wait_for_key(account, "okx", timeout=600, newer_than=None)
    assert key.secret == "new"
    assert key.version == old.version  # metadata was deleted: versions restart at 1
    assert len(fake_time.sleeps) == 3
    assert fake_time.sleeps[0] < fake_time.sleeps[1] < fake_time.sleeps[2]  # backoff


def test_wait_for_key_newer_than_skips_the_old_version(root, robot, account, fake_time) -> None:
    _write(root, account)
    fake_time.on_sleep = [lambda: _write(root, account, secret="v2")]
    key = robot.wait_for_key(account, "okx", timeout=60, newer_than=1)
    assert (key.version, key.secret) == (2, "v2")


def test_wait_for_key_gives_up_after_timeout_with_bounded_delays(robot, account, fake_time) -> None:
    start = fake_time.now
    with pytest.raises(KeyNotFound, match="within 300s"):
        robot.wait_for_key(account, "okx", timeout=300, max_delay=20)
    assert fake_time.now - start == pytest.approx(300)
    assert max(fake_time.sleeps) <= 20 * 1.2
    assert len(fake_time.sleeps) < 40  # backoff, not a busy loop


def test_relogs_in_before_the_token_expires(root, robot, account, fake_time, monkeypatch) -> None:
    logins: list[str] = []
    real_login = hvac.api.auth_methods.AppRole.login

    def counting_login(self, *args, **kwargs):
        logins.append("login")
        return real_login(self, *args, **kwargs)

    monkeypatch.setattr(hvac.api.auth_methods.AppRole, "login", counting_login)
    _write(root, account)
    robot.get_key(account, "okx")
    robot.get_key(account, "okx")
    assert len(logins) == 1
    fake_time.now += 3600 - 120  # the robot role's token_ttl is 1h; margin is 60s
    robot.get_key(account, "okx")
    assert len(logins) == 1
    fake_time.now += 70
    robot.get_key(account, "okx")
    assert len(logins) == 2


def test_expired_token_is_replaced_on_403(devvault) -> None:
    root = hvac.Client(url=devvault.addr, token=devvault.root_token)
    apply_layout(root, build_layout())
    _write(root, "alice")
    creds = issue_approle_credentials(root, "keybroker-robot")
    robot = RobotKeyClient(devvault.addr, creds.role_id, creds.secret_id)
    assert robot.get_key("alice", "okx").version == 1
    devvault.clock.advance(2 * 3600)  # Vault's side: the 1h token has expired
    assert robot.get_key("alice", "okx").version == 1


def test_wrong_secret_id_is_access_denied_without_the_secret(root) -> None:
    creds = issue_approle_credentials(root, "keybroker-robot")
    robot = RobotKeyClient(root.url, creds.role_id, "CANARY-wrong-secret-id")
    with pytest.raises(AccessDenied) as caught:
        robot.get_key("alice", "okx")
    assert "CANARY" not in str(caught.value) + repr(caught.value)
    assert caught.value.__cause__ is None


def test_vault_unreachable_is_vault_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    robot = RobotKeyClient(f"http://127.0.0.1:{port}", "role", "CANARY-secret", timeout=2)
    with pytest.raises(VaultUnavailable) as caught:
        robot.get_key("alice", "okx")
    assert "CANARY" not in str(caught.value)


def test_wait_for_key_rides_out_a_vault_outage(devvault) -> None:
    root = hvac.Client(url=devvault.addr, token=devvault.root_token)
    apply_layout(root, build_layout())
    _write(root, "alice")
    creds = issue_approle_credentials(root, "keybroker-robot")
    fake = FakeTime()
    robot = RobotKeyClient(
        devvault.addr, creds.role_id, creds.secret_id, clock=fake.clock, sleep=fake.sleep
    )
    robot.get_key("alice", "okx")  # logged in
    devvault.faults.fail_next(2, status=503, path_prefix="exchange-keys/")
    with pytest.raises(VaultUnavailable):
        robot.get_key("alice", "okx")
    key = robot.wait_for_key("alice", "okx", timeout=60)
    assert key.version == 1
    assert len(fake.sleeps) == 1


@pytest.mark.parametrize(
    ("account", "exchange"),
    [
        ("..", "okx"),
        ("a/b", "okx"),
        ("a%2fb", "okx"),
        ("Alice", "okx"),
        ("alice", "../x"),
        ("alice", "okx\x00"),
        ("", "okx"),
        ("\uff41lice", "okx"),  # fullwidth a
    ],
)
def test_identifiers_that_could_escape_the_path_are_refused(account, exchange) -> None:
    robot = RobotKeyClient("http://127.0.0.1:9", "role", "secret")
    with pytest.raises(InvalidIdentifier):
        robot.get_key(account, exchange)
