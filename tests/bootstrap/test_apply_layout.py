"""apply_layout against a Vault through hvac (docs/contracts.md §2; docs/facts/vault.md §3-§5).

Every test runs unchanged against a real Vault when KEYBROKER_TEST_VAULT_ADDR/TOKEN
are set. Tests that only use the layout apply the default one (as everyone sharing that
Vault does) and use unique account names; tests that watch a first apply, change the
layout or make it conflict use the shipped layout under unique names
(tests/bootstrap/unique_layout.py) and remove it afterwards.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest

from broker.bootstrap import (
    AppRoleCredentials,
    LayoutConflict,
    apply_layout,
    create_caller_token,
    issue_approle_credentials,
)
from broker.layout import (
    BROKER_POLICY,
    BROKER_TRANSIT_POLICY,
    INTAKE_POLICY,
    POLICY_NAMES,
    ROBOT_READ_POLICY,
    ROBOT_TRANSIT_POLICY,
    SITE_BACKEND_POLICY,
    SITE_READ_POLICY,
    SITE_TRANSIT_POLICY,
    TRANSIT_POLICY_NAMES,
    AuditDevice,
    build_layout,
)
from tests.bootstrap.unique_layout import UniqueLayout, remove_layout, unique_layout
from tests.fixtures.vault import unique_name

MOUNT = "exchange-keys"


def _account() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}"


def _login(vault_client: hvac.Client, creds: AppRoleCredentials) -> hvac.Client:
    client = hvac.Client(url=vault_client.url)
    client.auth.approle.login(role_id=creds.role_id, secret_id=creds.secret_id)
    return client


def _read(client: hvac.Client, path: str) -> dict:
    return client.secrets.kv.v2.read_secret_version(
        path=path, mount_point=MOUNT, raise_on_deleted_version=True
    )


@pytest.fixture
def fresh_layout(vault_client: hvac.Client) -> Iterator[UniqueLayout]:
    """The shipped layout under unique names, not applied yet; removed afterwards."""
    names = unique_layout()
    yield names
    remove_layout(vault_client, names)


@pytest.fixture
def layout_applied(vault_client: hvac.Client) -> hvac.Client:
    apply_layout(vault_client, build_layout())
    return vault_client


def test_first_apply_creates_everything_second_changes_nothing(
    fresh_layout: UniqueLayout, vault_client: hvac.Client
) -> None:
    client, names = vault_client, fresh_layout
    # approle/ is one per Vault: on a shared Vault another test may have enabled it.
    had_approle = "approle/" in client.sys.list_auth_methods()["data"]
    lines: list[str] = []
    first = apply_layout(client, names.layout, on_step=lines.append)
    assert first.changed
    steps = [step.name for step in first.steps]
    assert steps == [
        f"mount {names.mount}/ (kv v2)",
        f"{names.mount} max_versions=5",
        f"mount {names.layout.transit_mount}/ (transit)",
        *(f"policy {names.policy[name]}" for name in POLICY_NAMES + TRANSIT_POLICY_NAMES),
        f"token role {names.site_role}",
        "auth method approle/",
        f"approle {names.approle['keybroker-broker']}",
        f"approle {names.approle['keybroker-robot']}",
        f"approle {names.approle['keybroker-site-backend']}",
    ]
    changed = {step.name: step.changed for step in first.steps}
    assert changed.pop("auth method approle/") is not had_approle
    assert all(changed.values()), changed
    assert lines == [str(step) for step in first.steps]

    second = apply_layout(client, names.layout, on_step=lines.append)
    assert not second.changed
    assert [step.name for step in second.steps] == steps
    assert second.summary() == "nothing to do: all 16 steps already in place"


def test_reapply_on_shared_vault_changes_nothing(layout_applied: hvac.Client) -> None:
    report = apply_layout(layout_applied, build_layout())
    assert not report.changed, report.changed_steps


def test_layout_reads_back(layout_applied: hvac.Client) -> None:
    client = layout_applied
    layout = build_layout()
    mount = client.sys.list_mounted_secrets_engines()["data"][f"{MOUNT}/"]
    assert mount["type"] == "kv" and str(mount["options"]["version"]) == "2"
    assert client.secrets.kv.v2.read_configuration(mount_point=MOUNT)["data"]["max_versions"] == 5

    for name in POLICY_NAMES:
        assert client.sys.read_acl_policy(name)["data"]["policy"] == layout.policies[name]

    role = client.read("auth/token/roles/keybroker-site")["data"]
    assert role["token_type"] == "batch"
    assert role["orphan"] is True
    assert role["renewable"] is False
    assert role["allowed_policies"] == [SITE_READ_POLICY, SITE_TRANSIT_POLICY]
    # Vault refuses an explicit max TTL on a batch role; the broker caps site tokens.
    assert not role.get("token_explicit_max_ttl")

    assert client.sys.list_auth_methods()["data"]["approle/"]["type"] == "approle"
    broker = client.read("auth/approle/role/keybroker-broker")["data"]
    assert broker["token_policies"] == [BROKER_POLICY, BROKER_TRANSIT_POLICY]
    assert broker["token_no_default_policy"] is True
    robot = client.read("auth/approle/role/keybroker-robot")["data"]
    assert robot["token_policies"] == [ROBOT_READ_POLICY, ROBOT_TRANSIT_POLICY]


def test_drift_is_repaired_and_only_the_drifted_step_reports_a_change(
    fresh_layout: UniqueLayout, vault_client: hvac.Client
) -> None:
    client, names = vault_client, fresh_layout
    layout, intake = names.layout, names.policy[INTAKE_POLICY]
    apply_layout(client, layout)
    client.sys.create_or_update_acl_policy(intake, 'path "*" { capabilities = ["read"] }')
    client.write_data(
        f"auth/token/roles/{names.site_role}",
        data={**layout.site_token_role.vault_payload(), "token_bound_cidrs": ["0.0.0.0/0"]},
    )
    client.write_data(f"{names.mount}/config", data={"max_versions": 50})

    report = apply_layout(client, layout)
    assert {step.name for step in report.changed_steps} == {
        f"policy {intake}",
        f"token role {names.site_role}",
        f"{names.mount} max_versions=5",
    }
    assert all(step.detail in ("updated", "configured") for step in report.changed_steps)
    assert client.sys.read_acl_policy(intake)["data"]["policy"] == layout.policies[intake]
    role = client.read(f"auth/token/roles/{names.site_role}")["data"]
    assert role["token_bound_cidrs"] == []


def test_a_mount_of_another_kind_is_a_conflict_and_nothing_changes(
    vault_client: hvac.Client,
) -> None:
    client = vault_client
    auth_before = set(client.sys.list_auth_methods()["data"])
    # Every Vault has a cubbyhole/ mount: a layout naming it collides with another type.
    names = unique_layout(mount="cubbyhole")
    try:
        with pytest.raises(LayoutConflict, match="cubbyhole/ exists as 'cubbyhole'"):
            apply_layout(client, names.layout)
        policies = client.sys.list_acl_policies()["data"]["keys"]
        assert not set(names.policy.values()) & set(policies)
        assert set(client.sys.list_auth_methods()["data"]) == auth_before
        roles = client.list("auth/token/roles") or {"data": {"keys": []}}
        assert names.site_role not in roles["data"]["keys"]
    finally:
        remove_layout(client, names)


def test_audit_devices_are_enabled_once_and_a_different_one_is_a_conflict(
    fresh_layout: UniqueLayout, vault_client: hvac.Client
) -> None:
    client = vault_client
    # A unique path, and "discard" as the file: nothing is written, nothing shared clashes.
    path = unique_name("file")
    device = AuditDevice(path=path, type="file", options={"file_path": "discard"})
    layout = dataclasses.replace(fresh_layout.layout, audit_devices=(device,))
    try:
        first = apply_layout(client, layout)
        assert first.steps[0].name == f"audit device {path}/ (file)" and first.steps[0].changed
        assert client.sys.list_enabled_audit_devices()["data"][f"{path}/"]["type"] == "file"
        assert not apply_layout(client, layout).changed

        other = AuditDevice(path=path, type="file", options={"file_path": "stdout"})
        with pytest.raises(LayoutConflict, match=f"audit device {path}/"):
            apply_layout(client, dataclasses.replace(layout, audit_devices=(other,)))
    finally:
        client.sys.disable_audit_device(path)


def test_site_token_reads_site_keys_and_is_denied_robot_keys(
    layout_applied: hvac.Client,
) -> None:
    root = layout_applied
    account = _account()
    root.secrets.kv.v2.create_or_update_secret(
        f"site/{account}/binance", {"api_key": "site-key", "secret": "s"}, mount_point=MOUNT
    )
    root.secrets.kv.v2.create_or_update_secret(
        f"robot/{account}/binance", {"api_key": "robot-key", "secret": "s"}, mount_point=MOUNT
    )
    auth = root.auth.token.create(role_name="keybroker-site", ttl="5m")["auth"]
    assert auth["token_type"] == "batch"
    assert SITE_READ_POLICY in auth["policies"]
    site = hvac.Client(url=root.url, token=auth["client_token"])

    assert _read(site, f"site/{account}/binance")["data"]["data"]["api_key"] == "site-key"
    with pytest.raises(hvac.exceptions.Forbidden):
        _read(site, f"robot/{account}/binance")
    with pytest.raises(hvac.exceptions.Forbidden):
        site.secrets.kv.v2.list_secrets(f"robot/{account}", mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):
        site.secrets.kv.v2.create_or_update_secret(
            f"site/{account}/binance", {"api_key": "x", "secret": "y"}, mount_point=MOUNT
        )


def test_batch_site_token_role_carries_no_explicit_max_ttl() -> None:
    role = build_layout(site_token_max_ttl=600).site_token_role
    assert role.explicit_max_ttl == 600  # the cap the broker enforces
    assert role.vault_payload()["token_explicit_max_ttl"] == "0s"


def test_site_tokens_are_bound_to_the_configured_cidrs(vault_client: hvac.Client) -> None:
    client = vault_client
    names = unique_layout(site_token_cidrs=("10.20.0.0/16",))
    try:
        apply_layout(client, names.layout)
        client.secrets.kv.v2.create_or_update_secret(
            "site/alice/binance", {"api_key": "k", "secret": "s"}, mount_point=names.mount
        )
        token = client.auth.token.create(role_name=names.site_role)["auth"]["client_token"]
        site = hvac.Client(url=client.url, token=token)
        # This test talks from 127.0.0.1, outside 10.20.0.0/16: the token is refused.
        with pytest.raises(hvac.exceptions.Forbidden):
            site.secrets.kv.v2.read_secret_version(
                "site/alice/binance", mount_point=names.mount, raise_on_deleted_version=True
            )
        # Control: the same layout without the binding reads the key, so the CIDR refused.
        client.write_data(
            f"auth/token/roles/{names.site_role}",
            data={**names.layout.site_token_role.vault_payload(), "token_bound_cidrs": []},
        )
        token = client.auth.token.create(role_name=names.site_role)["auth"]["client_token"]
        site = hvac.Client(url=client.url, token=token)
        read = site.secrets.kv.v2.read_secret_version(
            "site/alice/binance", mount_point=names.mount, raise_on_deleted_version=True
        )
        assert read["data"]["data"]["api_key"] == "k"
    finally:
        remove_layout(client, names)


def test_broker_approle_writes_keys_but_cannot_read_them(layout_applied: hvac.Client) -> None:
    root = layout_applied
    broker = _login(root, issue_approle_credentials(root, "keybroker-broker"))
    account = _account()
    for role in ("site", "robot"):
        path = f"{role}/{account}/okx"
        broker.secrets.kv.v2.create_or_update_secret(
            path, {"api_key": "k", "secret": "s", "passphrase": "p"}, cas=0, mount_point=MOUNT
        )
        with pytest.raises(hvac.exceptions.Forbidden):
            _read(broker, path)
        meta = broker.secrets.kv.v2.read_secret_metadata(path, mount_point=MOUNT)
        assert meta["data"]["current_version"] == 1
    lookup = broker.auth.token.lookup_self()["data"]
    assert lookup["policies"] == [BROKER_POLICY, BROKER_TRANSIT_POLICY]


def test_robot_approle_reads_robot_keys_only(layout_applied: hvac.Client) -> None:
    root = layout_applied
    account = _account()
    for role in ("site", "robot"):
        root.secrets.kv.v2.create_or_update_secret(
            f"{role}/{account}/bybit", {"api_key": role, "secret": "s"}, mount_point=MOUNT
        )
    robot = _login(root, issue_approle_credentials(root, "keybroker-robot"))
    assert _read(robot, f"robot/{account}/bybit")["data"]["data"]["api_key"] == "robot"
    with pytest.raises(hvac.exceptions.Forbidden):
        _read(robot, f"site/{account}/bybit")


def test_wrapped_secret_id_unwraps_to_a_working_secret_id(layout_applied: hvac.Client) -> None:
    root = layout_applied
    wrapped = issue_approle_credentials(root, "keybroker-robot", wrap_ttl="60s")
    assert wrapped.wrapped
    secret_id = root.sys.unwrap(wrapped.secret_id)["data"]["secret_id"]
    robot = _login(root, AppRoleCredentials(wrapped.role_id, secret_id))
    assert root.auth.token.lookup(robot.token)["data"]["policies"] == [
        ROBOT_READ_POLICY,
        ROBOT_TRANSIT_POLICY,
    ]
    with pytest.raises(hvac.exceptions.InvalidRequest):  # wrapping tokens are single-use
        root.sys.unwrap(wrapped.secret_id)


def test_credentials_repr_hides_the_secret_id(layout_applied: hvac.Client) -> None:
    creds = issue_approle_credentials(layout_applied, "keybroker-broker")
    assert creds.secret_id not in repr(creds)
    assert creds.role_id in repr(creds)
    role_id, secret_id, wrapped = creds  # still a plain tuple for callers
    assert (role_id, wrapped) == (creds.role_id, False) and secret_id == creds.secret_id


@pytest.mark.parametrize("policy", [INTAKE_POLICY, SITE_BACKEND_POLICY])
def test_caller_tokens_hold_exactly_the_marker_policy(
    layout_applied: hvac.Client, policy: str
) -> None:
    token = create_caller_token(layout_applied, [policy], ttl="10m")
    data = layout_applied.auth.token.lookup(token)["data"]
    assert data["policies"] == [policy]
    assert 0 < data["ttl"] <= 600
