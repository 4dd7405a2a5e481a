"""The typed stack-config loader: defaults, and errors that name the key and what it
expects (never the value, which may be a misplaced secret)."""

from __future__ import annotations

import pytest

from infra.config import PLAIN_KEYS, ConfigError, parse_config
from tests.infra.harness import REPO, run_program, stack_config

CANARY = "CANARY-not-for-messages"
TWO_HOSTS = '[{"name": "a", "address": "127.0.0.1"}, {"name": "b", "address": "10.0.0.2"}]'


def _base(**changes: str | None) -> dict[str, str | None]:
    return {**stack_config("dev"), **changes}


def test_shipped_stacks_parse() -> None:
    dev = parse_config(stack_config("dev"), stack="dev")
    prod = parse_config(stack_config("prod"), stack="prod")
    assert (dev.vault_nodes, prod.vault_nodes) == (1, 3)
    assert dev.publish_address == prod.publish_address == "127.0.0.1"
    assert (dev.revoke_root_token, prod.revoke_root_token) == (False, True)
    assert dev.site_token_ttl == 300 and dev.site_token_max_ttl == 900
    assert prod.site_token_cidrs == ("10.20.0.0/24",)


def test_every_key_is_documented_in_both_stack_files_and_the_docs() -> None:
    docs = (REPO / "docs" / "deploy.md").read_text()
    for stack in ("dev", "prod"):
        text = (REPO / f"Pulumi.{stack}.yaml").read_text()
        for key in (*PLAIN_KEYS, "auditHmacKey"):
            assert f"keybroker:{key}" in text, (stack, key)
    for key in (*PLAIN_KEYS, "auditHmacKey"):
        assert f"`{key}`" in docs, key


def test_defaults_follow_the_environment() -> None:
    minimal = {
        "environment": "prod",
        "vaultImage": stack_config("prod")["vaultImage"],
        "disableMlock": "true",
        "awsRegion": "eu-west-1",
        "siteTokenCidrs": "10.0.0.0/24",
        "robotCidrs": '["10.1.0.1/32"]',
        "sealUsesInstanceRole": "true",
    }
    cfg = parse_config(minimal, stack="prod")
    assert cfg.vault_nodes == 3 and cfg.revoke_root_token is True
    assert cfg.broker_replicas == 2 and len(cfg.docker_hosts) == 1
    assert cfg.telemetry_retention == 24 * 3600
    assert cfg.secrets_prefix == "keybroker/prod" and cfg.secrets_recovery_window_days == 30
    assert cfg.robot_cidrs == ("10.1.0.1/32",)


@pytest.mark.parametrize(
    ("changes", "key", "expects"),
    [
        ({"environment": None}, "environment", "dev or prod"),
        ({"environment": "staging"}, "environment", "dev or prod"),
        ({"vaultNodes": "2"}, "vaultNodes", "1 (single node) or 3"),
        ({"vaultNodes": "many"}, "vaultNodes", "an integer"),
        ({"vaultImage": "hashicorp/vault"}, "vaultImage", "repo:tag"),
        ({"vaultImage": "hashicorp/vault@sha256:abc"}, "vaultImage", "repo:tag"),
        ({"vaultImage": None}, "vaultImage", "required"),
        ({"disableMlock": None}, "disableMlock", "set it explicitly"),
        ({"disableMlock": "maybe"}, "disableMlock", "true or false"),
        ({"publishAddress": "0.0.0.0"}, "publishAddress", "127.0.0.1 or ::1 in the dev"),
        ({"publishAddress": "localhost"}, "publishAddress", "an IP address"),
        ({"awsRegion": "europe"}, "awsRegion", "an AWS region"),
        ({"awsEndpointUrl": "ftp://x"}, "awsEndpointUrl", "an http(s) URL"),
        ({"kmsKeyArn": "alias/mine"}, "kmsKeyArn", "a KMS key ARN"),
        ({"recoveryThreshold": "6"}, "recoveryThreshold", "at most recoveryShares"),
        ({"kvMount": "a/b"}, "kvMount", "a single path segment"),
        ({"siteTokenTtl": "soon"}, "siteTokenTtl", "a duration"),
        ({"siteTokenMaxTtl": "24h"}, "siteTokenMaxTtl", "at most 1h"),
        ({"siteTokenTtl": "20m"}, "siteTokenTtl", "no longer than siteTokenMaxTtl"),
        ({"siteTokenCidrs": None}, "siteTokenCidrs", "non-empty list"),
        ({"siteTokenCidrs": '["0.0.0.0/0"]'}, "siteTokenCidrs", "narrower than 0.0.0.0/0"),
        ({"robotCidrs": "not-a-cidr"}, "robotCidrs", "IP addresses or CIDR blocks"),
        ({"robotCidrs": "[1, 2]"}, "robotCidrs", "a list of strings"),
        ({"brokerPort": "80"}, "brokerPort", "an integer from 1024 to 65535"),
        ({"brokerCpus": "lots"}, "brokerCpus", "a number"),
        # Issue 14: without credentials for the seal, Vault exits on start.
        ({"awsCredentialsFile": None}, "awsCredentialsFile", "sealUsesInstanceRole true"),
        ({"sealUsesInstanceRole": "true"}, "sealUsesInstanceRole", "false when"),
        # Issue 14: 127.0.0.1 inside a Vault container is the container itself.
        (
            {"awsEndpointUrl": "http://127.0.0.1:5000"},
            "awsSealEndpointUrl",
            "as Vault's containers reach it",
        ),
        (
            {"awsEndpointUrl": "http://localhost:5000", "awsSealEndpointUrl": "http://[::1]:1"},
            "awsSealEndpointUrl",
            "not loopback",
        ),
        ({"dockerHosts": "[]"}, "dockerHosts", "JSON list"),
        (
            {"dockerHosts": TWO_HOSTS},
            "dockerHosts",
            "single host in the dev",
        ),
        ({"dockerHosts": '[{"name": "A!", "address": "10.0.0.1"}]'}, "dockerHosts", "host names"),
        (
            {"dockerHosts": '[{"name": "a", "address": "10.0.0.1"}]'},
            "dockerHosts",
            "127.0.0.1 or ::1 in the dev",
        ),
        ({"brokerTokenPeriod": "10m"}, "brokerTokenPeriod", "from 1h to 768h"),
        ({"brokerReplicas": "0"}, "brokerReplicas", "an integer from 1"),
    ],
)
def test_errors_name_the_key_and_what_it_expects(
    changes: dict[str, str | None], key: str, expects: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_base(**changes), stack="dev")
    assert err.value.key == key
    assert str(err.value).startswith(f"config keybroker:{key}: expected")
    assert expects in str(err.value)


def test_error_messages_never_echo_the_value() -> None:
    for key in ("vaultImage", "awsRegion", "kmsKeyArn", "siteTokenCidrs", "disableMlock"):
        with pytest.raises(ConfigError) as err:
            parse_config(_base(**{key: CANARY}), stack="dev")
        assert CANARY not in str(err.value)


def test_prod_requires_robot_cidrs() -> None:
    with pytest.raises(ConfigError, match="robotCidrs"):
        parse_config({**stack_config("prod"), "robotCidrs": "[]"}, stack="prod")


def test_a_secret_key_set_in_plain_is_refused() -> None:
    config = {**stack_config("dev"), "auditHmacKey": CANARY}  # not marked secret
    with pytest.raises(ConfigError, match="auditHmacKey: expected a secret value") as err:
        run_program("dev", config)
    assert CANARY not in str(err.value)


def test_seal_endpoint_defaults_to_a_non_loopback_endpoint_and_is_separate() -> None:
    remote = parse_config(_base(awsEndpointUrl="http://10.9.0.5:4566"), stack="dev")
    assert remote.aws_seal_endpoint_url == "http://10.9.0.5:4566"
    split = parse_config(
        _base(awsEndpointUrl="http://127.0.0.1:5000", awsSealEndpointUrl="http://172.17.0.1:5000"),
        stack="dev",
    )
    assert split.aws_endpoint_url == "http://127.0.0.1:5000"
    assert split.aws_seal_endpoint_url == "http://172.17.0.1:5000"


def test_prod_hosts_must_be_reachable_addresses() -> None:
    with pytest.raises(ConfigError, match="not loopback"):
        parse_config({**stack_config("prod"), "dockerHosts": TWO_HOSTS}, stack="prod")
    cfg = parse_config(stack_config("prod"), stack="prod")
    assert [h.name for h in cfg.docker_hosts] == ["vault-a", "vault-b", "vault-c"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_broker_gets_exchange_egress_and_vault_cidrs_apart(stack: str) -> None:
    """The stacks hand the broker the split settings, never the deprecated double-meaning
    names (which would log a deprecation warning in every replica and bind Vault to the
    exchange-side addresses)."""
    from broker.config import DEPRECATED_NAMES, Settings, env_name
    from infra.__main__ import broker_settings

    cfg = parse_config(stack_config(stack), stack=stack)
    env = broker_settings(cfg, "keybroker-site")
    assert not {env_name(old) for old in DEPRECATED_NAMES} & set(env)
    settings = Settings(**{k.removeprefix("KEYBROKER_").lower(): v for k, v in env.items()})
    assert settings.robot_vault_cidrs == list(cfg.robot_cidrs)
    assert settings.site_vault_cidrs == list(cfg.site_token_cidrs)
    assert settings.robot_exchange_egress_ips == list(cfg.robot_egress_ips)
