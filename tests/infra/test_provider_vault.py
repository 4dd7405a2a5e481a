"""The Vault providers' CRUD for real: hvac against devvault, boto3 against moto.

One deployment's life: init (secrets to Secrets Manager, only ARNs out), the layout
(applied by broker.bootstrap.apply_layout, twice), the broker's wrapped secret-id and
its unwrapping by the launcher, root-token revocation, and deletes that clean up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from botocore.exceptions import ClientError

from broker.launcher import unwrap_secret_id
from infra.providers.clients import AwsTarget, ProviderError
from infra.providers.root_token import RootTokenRevocationProvider
from infra.providers.vault_config import VaultConfigProvider
from infra.providers.vault_init import VaultInitProvider, secret_names
from keybroker_dev.devvault.server import DevVaultServer
from tests.infra.conftest import (
    PREFIX,
    _config_props,
    _init_props,
    _kms,
    _layout,
    _revocation_props,
)


def _secret(aws: AwsTarget, arn: str) -> dict[str, Any]:
    return json.loads(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


# --- init ----------------------------------------------------------------------------------


def test_init_stores_secrets_encrypted_and_outputs_only_arns(
    aws: AwsTarget, fresh_vault: DevVaultServer
) -> None:
    kms_arn = _kms(aws)
    created = VaultInitProvider().create(_init_props(fresh_vault.addr, kms_arn))
    root = fresh_vault.root_token
    assert root and hvac.Client(url=fresh_vault.addr).sys.is_initialized()
    assert root not in json.dumps(created.outs)  # never in state
    record = _secret(aws, created.outs["root_token_secret_arn"])
    assert record == {"root_token": root, "revoked_at": None}
    recovery = _secret(aws, created.outs["recovery_keys_secret_arn"])
    assert len(recovery["recovery_keys_base64"]) == 5 and recovery["recovery_threshold"] == 3
    assert not any(k in json.dumps(created.outs) for k in recovery["recovery_keys_base64"])
    sm = aws.client("secretsmanager")
    for name in secret_names(PREFIX):
        assert sm.describe_secret(SecretId=name)["KmsKeyId"] == kms_arn


def test_second_init_create_changes_nothing(aws: AwsTarget, fresh_vault: DevVaultServer) -> None:
    props = _init_props(fresh_vault.addr, _kms(aws))
    first = VaultInitProvider().create(dict(props))
    before = _secret(aws, first.outs["root_token_secret_arn"])
    second = VaultInitProvider().create(dict(props))
    assert second.outs == first.outs
    assert _secret(aws, second.outs["root_token_secret_arn"]) == before


def test_init_refuses_a_vault_initialised_elsewhere(aws: AwsTarget) -> None:
    with DevVaultServer() as vault:  # initialised, no records in Secrets Manager
        with pytest.raises(ProviderError, match="initialised outside this stack") as err:
            VaultInitProvider().create(_init_props(vault.addr, _kms(aws)))
        assert vault.root_token not in str(err.value)


def test_init_refuses_to_overwrite_existing_records(
    aws: AwsTarget, fresh_vault: DevVaultServer
) -> None:
    aws.client("secretsmanager").create_secret(Name=secret_names(PREFIX)[0], SecretString="{}")
    with pytest.raises(ProviderError, match="already exists"):
        VaultInitProvider().create(_init_props(fresh_vault.addr, _kms(aws)))
    assert not hvac.Client(url=fresh_vault.addr).sys.is_initialized()  # nothing done


def test_init_times_out_clearly_when_vault_is_unreachable(aws: AwsTarget) -> None:
    # The discard port: nothing listens there.
    props = _init_props("http://127.0.0.1:9", _kms(aws), wait_timeout_s=0.0)
    with pytest.raises(ProviderError, match="did not answer"):
        VaultInitProvider().create(props)


def test_init_diff_update_and_delete(aws: AwsTarget, fresh_vault: DevVaultServer) -> None:
    provider = VaultInitProvider()
    created = provider.create(_init_props(fresh_vault.addr, _kms(aws)))
    olds = created.outs
    assert (
        provider.diff(created.id, olds, _init_props(fresh_vault.addr, olds["kms_key_arn"])).changes
        is False
    )
    moved = {**olds, "secrets_prefix": "elsewhere"}
    assert provider.diff(created.id, olds, moved).changes is True
    assert not provider.diff(created.id, olds, moved).replaces  # never replaced
    with pytest.raises(ProviderError, match="secrets_prefix cannot change"):
        provider.update(created.id, olds, moved)
    # A new unseal key: same records, re-encrypted under it.
    new_key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    updated = provider.update(created.id, olds, {**olds, "kms_key_arn": new_key}).outs
    sm = aws.client("secretsmanager")
    assert updated["root_token_secret_arn"] == olds["root_token_secret_arn"]
    for arn in (olds["root_token_secret_arn"], olds["recovery_keys_secret_arn"]):
        assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == new_key
    provider.delete(created.id, olds)
    for arn in (olds["root_token_secret_arn"], olds["recovery_keys_secret_arn"]):
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.describe_secret(SecretId=arn)


# --- the layout ----------------------------------------------------------------------------


def test_config_applies_the_layout_idempotently(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    provider = VaultConfigProvider()
    layout = _layout()
    created = provider.create(_config_props(fresh_vault, initialised, layout))
    outs = created.outs
    assert outs["changed_steps"]  # a fresh Vault needed every step
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    for name, text in layout["policies"].items():
        assert root.sys.read_acl_policy(name)["data"]["policy"] == text
    role = root.read("auth/token/roles/keybroker-site")["data"]
    assert role["token_type"] == "batch" and role["orphan"] is True
    assert outs["site_token_role"] == "keybroker-site"
    robot_id = root.auth.approle.read_role_id("keybroker-robot")["data"]["role_id"]
    assert outs["robot_role_id"] == robot_id
    audit = root.sys.list_enabled_audit_devices()["data"]
    assert {"file/", "stdout/"} <= set(audit)
    # A second create (e.g. after a lost state) changes nothing.
    again = provider.create(_config_props(fresh_vault, initialised, layout))
    assert again.outs["changed_steps"] == []
    assert fresh_vault.root_token not in json.dumps(again.outs)


def test_config_diff_and_update(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    provider = VaultConfigProvider()
    olds = provider.create(_config_props(fresh_vault, initialised, _layout())).outs
    same = _config_props(fresh_vault, initialised, _layout())
    assert provider.diff("id", olds, same).changes is False
    moved = _config_props(fresh_vault, initialised, _layout(site_token_cidrs=("10.9.0.0/16",)))
    diff = provider.diff("id", olds, moved)
    assert diff.changes is True and not diff.replaces
    updated = provider.update("id", olds, moved).outs
    assert updated["changed_steps"] == ["token role keybroker-site: updated"]
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    role = root.read("auth/token/roles/keybroker-site")["data"]
    assert role["token_bound_cidrs"] == ["10.9.0.0/16"]


def test_config_delete_removes_roles_and_policies_but_keeps_keys(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    provider = VaultConfigProvider()
    layout = _layout()
    outs = provider.create(_config_props(fresh_vault, initialised, layout)).outs
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    root.secrets.kv.v2.create_or_update_secret(
        "site/a/binance", {"x": "1"}, mount_point="exchange-keys"
    )
    provider.delete("id", outs)
    listed = root.sys.list_acl_policies()["data"]["keys"]
    assert not set(layout["policies"]) & set(listed)
    assert root.read("auth/token/roles/keybroker-site") is None
    assert root.read("auth/approle/role/keybroker-broker") is None
    kept = root.secrets.kv.v2.read_secret_version(
        "site/a/binance", mount_point="exchange-keys", raise_on_deleted_version=True
    )
    assert kept["data"]["data"] == {"x": "1"}


# --- root-token revocation -----------------------------------------------------------------


def test_root_token_revocation(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    config = VaultConfigProvider()
    config_outs = config.create(_config_props(fresh_vault, initialised, _layout())).outs
    props = _revocation_props(fresh_vault, initialised)
    root = fresh_vault.root_token
    first = RootTokenRevocationProvider().create(dict(props))
    assert first.outs["revoked_at"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=fresh_vault.addr, token=root).auth.token.lookup_self()
    record = _secret(aws, initialised["root_token_secret_arn"])
    assert record["root_token"] is None and record["revoked_at"] == first.outs["revoked_at"]
    second = RootTokenRevocationProvider().create(dict(props))  # changes nothing
    assert second.outs["revoked_at"] == first.outs["revoked_at"]
    # Later changes need a new root token, and say how to get one.
    moved = _config_props(fresh_vault, initialised, _layout(site_token_cidrs=("10.9.0.0/16",)))
    with pytest.raises(ProviderError, match="generate-root"):
        config.update("id", config_outs, moved)
    config.delete("id", config_outs)  # warns and leaves the layout in place


def test_launcher_main_refuses_to_start_without_its_secret_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker import launcher

    monkeypatch.setenv(launcher.WRAPPED_FILE_ENV, str(tmp_path / "gone.wrap"))
    assert launcher.main() == 2
    assert "brokerCredentialRotation" in capsys.readouterr().err
    assert launcher.WRAPPED_FILE_ENV not in os.environ  # popped: not inherited by the broker


def test_config_waits_for_vault_to_become_active(
    aws: AwsTarget,
    fresh_vault: DevVaultServer,
    initialised: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right after init a real Vault answers 503 until the seal unseals it and it takes
    leadership; the provider polls sys/health instead of failing the deployment."""
    from infra.providers import clients

    slept: list[float] = []
    monkeypatch.setattr(clients.time, "sleep", slept.append)
    fresh_vault.faults.fail_next(2, status=503, path_prefix="sys/health")
    outs = VaultConfigProvider().create(_config_props(fresh_vault, initialised, _layout())).outs
    assert outs["site_token_role"] == "keybroker-site" and slept == [1.0, 1.0]
    fresh_vault.faults.fail_next(1000, status=503, path_prefix="sys/health")
    with pytest.raises(ProviderError, match=r"not ready after 0s \(sys/health answered 503\)"):
        clients.wait_until_active(hvac.Client(url=fresh_vault.addr), timeout_s=0)


def test_launcher_carries_on_when_the_used_token_file_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with DevVaultServer() as vault:
        root = hvac.Client(url=vault.addr, token=vault.root_token)
        wrapped = root.sys.wrap(payload={"secret_id": "sid-123"}, ttl="60s")["wrap_info"]["token"]
        wrap_file = tmp_path / "secret-id.wrap"
        wrap_file.write_text(wrapped)

        def refuse(self: Path, missing_ok: bool = False) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "unlink", refuse)
        assert unwrap_secret_id(wrap_file, vault.addr, None) == "sid-123"
    err = capsys.readouterr().err
    assert "could not remove" in err and wrapped not in err


# --- issue 14: init records exist before sys/init ------------------------------------------


class _FailingPuts:
    """A Secrets Manager client whose next `failures` writes (create_secret or
    put_secret_value: either can carry a value) fail."""

    def __init__(self, sm: Any, failures: int) -> None:
        self._sm = sm
        self.failures = failures

    def _write(self, call: str, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "x"}}, call)
        return getattr(self._sm, call)(**kwargs)

    def put_secret_value(self, **kwargs: Any) -> Any:
        return self._write("put_secret_value", **kwargs)

    def create_secret(self, **kwargs: Any) -> Any:
        return self._write("create_secret", **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sm, name)


def _with_sm(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    original = AwsTarget.client

    def client(self: AwsTarget, service: str) -> Any:
        real = original(self, service)
        return make(real) if service == "secretsmanager" else real

    monkeypatch.setattr(AwsTarget, "client", client)


def test_init_never_happens_without_a_place_for_its_secrets(
    aws: AwsTarget, fresh_vault: DevVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: a failed Secrets Manager write used to come after sys/init, so Vault was
    initialised for good and every retry refused. Now the records come first."""
    kms_arn = _kms(aws)
    _with_sm(monkeypatch, lambda sm: _FailingPuts(sm, failures=100))
    with pytest.raises(ClientError):
        VaultInitProvider().create(_init_props(fresh_vault.addr, kms_arn))
    assert not hvac.Client(url=fresh_vault.addr).sys.is_initialized()  # nothing lost
    monkeypatch.undo()
    # The retry adopts the pending records and completes.
    created = VaultInitProvider().create(_init_props(fresh_vault.addr, kms_arn))
    assert _secret(aws, created.outs["root_token_secret_arn"])["root_token"]
    assert len(_secret(aws, created.outs["recovery_keys_secret_arn"])["recovery_keys_base64"]) == 5


def test_init_retries_a_transient_write_after_init(
    aws: AwsTarget, fresh_vault: DevVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.providers import secrets

    kms_arn = _kms(aws)
    failing: list[_FailingPuts] = []

    def make(sm: Any) -> _FailingPuts:
        failing.append(_FailingPuts(sm, failures=0))
        return failing[-1]

    _with_sm(monkeypatch, make)
    slept: list[float] = []
    monkeypatch.setattr(secrets.time, "sleep", slept.append)
    original_init = hvac.api.system_backend.Init.initialize

    def init_then_fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = original_init(self, *args, **kwargs)
        failing[-1].failures = 2  # the next two writes (after init) fail
        return answer

    monkeypatch.setattr(hvac.api.system_backend.Init, "initialize", init_then_fail)
    created = VaultInitProvider().create(_init_props(fresh_vault.addr, kms_arn))
    assert slept == [1.0, 2.0]
    assert _secret(aws, created.outs["root_token_secret_arn"])["root_token"] == (
        fresh_vault.root_token
    )


def test_init_refuses_an_initialised_vault_with_pending_records(
    aws: AwsTarget, fresh_vault: DevVaultServer
) -> None:
    from infra.providers.secrets import PENDING_RECORD

    sm = aws.client("secretsmanager")
    for name in secret_names(PREFIX):
        sm.create_secret(Name=name, SecretString=PENDING_RECORD)
    hvac.Client(url=fresh_vault.addr).sys.initialize(recovery_shares=1, recovery_threshold=1)
    with pytest.raises(ProviderError, match="still pending"):
        VaultInitProvider().create(_init_props(fresh_vault.addr, _kms(aws)))


def test_init_read_reports_drift(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    read = VaultInitProvider().read("id", initialised).outs
    assert read["records_complete"] is True and read["vault_initialized"] is True
    aws.client("secretsmanager").delete_secret(
        SecretId=initialised["recovery_keys_secret_arn"], ForceDeleteWithoutRecovery=True
    )
    assert VaultInitProvider().read("id", initialised).outs["records_complete"] is False


# --- issue 14: revocation checked on every `up` ------------------------------------------


def test_root_token_put_back_is_revoked_on_the_next_up(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    """docs/deploy.md: a root token generated for a later change is revoked again by the
    next `up`. The old diff compared inputs only, so it never ran again."""
    props = _revocation_props(fresh_vault, initialised)
    generated = _generate_root(fresh_vault)  # what generate-root will give, later
    provider = RootTokenRevocationProvider()
    olds = provider.create(dict(props)).outs
    assert provider.diff("id", olds, dict(props)).changes is False  # nothing to do
    # An operator generates a root token (generate-root) and stores it for a change.
    aws.client("secretsmanager").put_secret_value(
        SecretId=props["token_secret_arn"],
        SecretString=json.dumps({"root_token": generated, "revoked_at": None}),
    )
    assert provider.read("id", olds).outs["token_present"] is True  # refresh shows it
    diff = provider.diff("id", olds, dict(props))
    assert diff.changes is True and not diff.replaces
    outs = provider.update("id", olds, dict(props)).outs
    assert outs["token_present"] is False
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=fresh_vault.addr, token=generated).auth.token.lookup_self()
    assert _secret(aws, props["token_secret_arn"])["root_token"] is None


def _generate_root(vault: DevVaultServer) -> str:
    """A second root token, as `vault operator generate-root` would give (devvault's
    root can create one: root tokens may create root children)."""
    root = hvac.Client(url=vault.addr, token=vault.root_token)
    return str(root.auth.token.create(policies=["root"], no_parent=True)["auth"]["client_token"])


# --- issue 14: refresh sees drift in the layout -------------------------------------------


def test_config_read_shows_drift_and_the_next_up_repairs_it(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]
) -> None:
    provider = VaultConfigProvider()
    layout = _layout()
    outs = provider.create(_config_props(fresh_vault, initialised, layout)).outs
    assert provider.read("id", outs).outs["drift"] == []
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    root.sys.create_or_update_acl_policy(
        "keybroker-site-read", 'path "*" { capabilities = ["read"] }'
    )
    root.write("auth/token/roles/keybroker-site", token_type="service", renewable=True)
    refreshed = provider.read("id", outs).outs
    assert refreshed["drift"] == ["policy keybroker-site-read", "auth/token/roles/keybroker-site"]
    news = _config_props(fresh_vault, initialised, layout)
    assert provider.diff("id", refreshed, news).changes is True
    repaired = provider.update("id", refreshed, news).outs
    assert repaired["drift"] == [] and provider.read("id", repaired).outs["drift"] == []
