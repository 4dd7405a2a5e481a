"""The broker's Vault credential: a periodic token, delivered response-wrapped.

Why a periodic token (docs/deploy.md "Deploy facts"): Vault renews a periodic token to
its full period on every renewal, with no maximum lifetime, so a running broker keeps it
forever (the launcher renews it on a timer, the broker on use). An AppRole secret-id
with a TTL would instead die under the broker after that TTL, and re-login would reuse
it. The token comes from token role `keybroker-broker-periodic` (policy keybroker-broker
only, orphan, periodic), minted by an *issuer* token that is not the broker's and not
root: its policy (infra/policies/keybroker-broker-issuer.hcl) only mints through that
role. The issuer lives in Secrets Manager, so prod can issue new broker credentials
after the root token is revoked.

`BrokerToken` is one replica's credential. Its `delivery` input is a digest of the
replica container's definition: whatever replaces the container also replaces this
resource, so every new container gets a fresh wrapped token through a new seed
(a wrapping token is single-use). `read` looks the token up by accessor, so `pulumi
refresh` shows a dead token (`alive: false`) and the next `up` replaces it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pulumi
from pulumi import dynamic

from infra.providers.clients import (
    AwsTarget,
    ProviderError,
    VaultAccess,
    props_root_token,
    props_vault_client,
    root_token_for_cleanup,
    wait_until_active,
)
from infra.providers.diffs import changed, diff_result
from infra.providers.secrets import create_secret, delete_secret, find_secret, read_record

ISSUER_POLICY = "keybroker-broker-issuer"
ISSUER_POLICY_TEXT = Path(__file__).resolve().parent.parent / "policies" / f"{ISSUER_POLICY}.hcl"
BROKER_TOKEN_ROLE = "keybroker-broker-periodic"
# The issuer's own period: renewed by any deployment past half of it; a stack left alone
# longer than the whole period needs the root token again to make a new issuer
# (docs/deploy.md "Rotate").
ISSUER_PERIOD_S = 32 * 24 * 3600
WRAPPED_OUTPUT = "wrapped_token"


def issuer_secret_name(prefix: str) -> str:
    return f"{prefix}/broker-token-issuer"


def read_issuer_token(aws: AwsTarget, arn: str) -> str:
    record = read_record(aws.client("secretsmanager"), arn)
    token = record.get("token") if record is not None else None
    if not token:
        raise ProviderError(f"secret {arn} holds no broker-token issuer")
    return str(token)


def _role_payload(broker_policy: str, period_s: int) -> dict[str, Any]:
    return {
        "allowed_policies": [broker_policy],
        "orphan": True,
        "renewable": True,
        "token_period": f"{period_s}s",
        "token_type": "service",
        "token_no_default_policy": True,  # keybroker-broker holds lookup/renew-self
        "token_explicit_max_ttl": 0,
    }


def _issuer_ttl(client: hvac.Client) -> int | None:
    try:
        return int(client.auth.token.lookup_self()["data"].get("ttl") or 0)
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
        return None


class BrokerTokenIssuerProvider(dynamic.ResourceProvider):
    """Policy, token role and the issuer token (kept in Secrets Manager)."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        aws = AwsTarget.from_props(props)
        sm = aws.client("secretsmanager")
        name = issuer_secret_name(props["secrets_prefix"])
        # The record's place exists before the token does (nothing to lose on a failure).
        arn = find_secret(sm, name) or create_secret(
            sm,
            name,
            json.dumps({"token": None}),
            props["kms_key_arn"],
            "keybroker: the token that mints broker tokens (not root, not the broker's)",
        )
        with props_vault_client(props, props_root_token(props)) as client:
            wait_until_active(client)
            client.sys.create_or_update_acl_policy(ISSUER_POLICY, ISSUER_POLICY_TEXT.read_text())
            client.write(
                f"auth/token/roles/{BROKER_TOKEN_ROLE}",
                **_role_payload(props["broker_policy"], int(float(props["period_s"]))),
            )
            existing = (read_record(sm, arn) or {}).get("token")
            alive = False
            if existing:
                with props_vault_client(props, existing) as issuer:
                    alive = _issuer_ttl(issuer) is not None
            if not alive:
                token = client.auth.token.create_orphan(
                    policies=[ISSUER_POLICY],
                    no_default_policy=True,
                    period=f"{ISSUER_PERIOD_S}s",
                    renewable=True,
                    display_name="keybroker-broker-issuer",
                )["auth"]["client_token"]
                sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"token": token}))
        outs = {**props, "issuer_secret_arn": arn, "role_name": BROKER_TOKEN_ROLE}
        return dynamic.CreateResult(name, self._checked(outs))

    def _checked(self, outs: dict[str, Any]) -> dict[str, Any]:
        """Outputs plus `issuer_ttl_s`, renewing the issuer on the way (every `up`)."""
        aws = AwsTarget.from_props(outs)
        try:
            token = read_issuer_token(aws, outs["issuer_secret_arn"])
        except ProviderError:
            return {**outs, "issuer_ttl_s": 0}
        with props_vault_client(outs, token) as issuer:
            try:
                issuer.auth.token.renew_self()
            except hvac.exceptions.VaultError:
                return {**outs, "issuer_ttl_s": 0}
            return {**outs, "issuer_ttl_s": _issuer_ttl(issuer) or 0}

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        aws = AwsTarget.from_props(props)
        try:
            token = read_issuer_token(aws, props["issuer_secret_arn"])
            with props_vault_client(props, token) as issuer:
                ttl = _issuer_ttl(issuer) or 0
        except ProviderError:
            ttl = 0
        return dynamic.ReadResult(id_, {**props, "issuer_ttl_s": ttl})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Also asks Vault, on every preview and `up`: an issuer past half its period (or
        gone) is a change, so that any `up` in time renews it."""
        keys = ("address", "ca_cert_pem", "period_s", "broker_policy", "token_secret_arn")
        moved = changed(olds, news, keys)
        ttl = (
            (self.read(_id, olds).outs or {}).get("issuer_ttl_s") if olds.get("issuer_ttl_s") else 0
        )
        if (ttl or 0) < ISSUER_PERIOD_S / 2:
            moved.append("issuer_ttl_s")
        return diff_result(changed(olds, news, ("secrets_prefix", "region")), moved)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        outs = {
            **news,
            "issuer_secret_arn": olds["issuer_secret_arn"],
            "role_name": BROKER_TOKEN_ROLE,
        }
        checked = self._checked(outs)
        if checked["issuer_ttl_s"] and not changed(olds, news, ("period_s", "broker_policy")):
            return dynamic.UpdateResult(checked)
        # The role changed, or the issuer is gone: redo it with the root token.
        return dynamic.UpdateResult(self.create(news).outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        aws = AwsTarget.from_props(props)
        try:
            token = read_issuer_token(aws, props["issuer_secret_arn"])
            with props_vault_client(props, token) as issuer:
                issuer.auth.token.revoke_self()
        except (ProviderError, hvac.exceptions.VaultError):
            pass  # already gone
        root = root_token_for_cleanup(props, "broker-token role and issuer policy left in place")
        if root is not None:
            with props_vault_client(props, root) as client:
                client.delete(f"auth/token/roles/{BROKER_TOKEN_ROLE}")
                client.sys.delete_acl_policy(ISSUER_POLICY)
        delete_secret(aws.client("secretsmanager"), props["issuer_secret_arn"], 0)


class BrokerTokenIssuer(dynamic.Resource, module="keybroker", name="BrokerTokenIssuer"):
    issuer_secret_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]
    issuer_ttl_s: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        *,
        vault: VaultAccess,
        token_secret_arn: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        secrets_prefix: str,
        broker_policy: str,
        period_s: float,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = vault.props(
            token_secret_arn=token_secret_arn,
            kms_key_arn=kms_key_arn,
            secrets_prefix=secrets_prefix,
            broker_policy=broker_policy,
            period_s=period_s,
            issuer_secret_arn=None,
            role_name=None,
            issuer_ttl_s=None,
        )
        super().__init__(BrokerTokenIssuerProvider(), name, props, opts)


class BrokerTokenProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        token = read_issuer_token(AwsTarget.from_props(props), props["issuer_secret_arn"])
        wrap_ttl = f"{int(float(props['wrap_ttl_s']))}s"
        with props_vault_client(props, token) as issuer:
            try:
                issuer.auth.token.renew_self()  # the issuer lives on with every delivery
                answer = issuer.adapter.post(
                    f"/v1/auth/token/create/{props['role_name']}",
                    json={"display_name": props["replica"]},
                    headers={"X-Vault-Wrap-TTL": wrap_ttl},
                )
            except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
                raise ProviderError(
                    "the broker-token issuer was refused (expired or revoked): run"
                    " `pulumi up` with a root token in the root-token secret to make a new one"
                ) from None
        info = answer["wrap_info"]
        outs = {
            **props,
            WRAPPED_OUTPUT: info["token"],
            "accessor": info.get("wrapped_accessor"),
            "issued_at": datetime.now(UTC).isoformat(),
            "alive": True,
        }
        return dynamic.CreateResult(f"{props['replica']}/{uuid.uuid4()}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """Whether the broker's token still lives (refresh shows `alive: false`)."""
        alive = props.get("alive")
        accessor = props.get("accessor")
        if accessor:
            try:
                token = read_issuer_token(AwsTarget.from_props(props), props["issuer_secret_arn"])
                with props_vault_client(props, token) as issuer:
                    issuer.auth.token.lookup_accessor(accessor)
                    alive = True
            except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
                alive = False
            except ProviderError:
                pass  # issuer unreadable: leave the last known answer
        return dynamic.ReadResult(id_, {**props, "alive": alive})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = ["address", "role_name", "rotation", "wrap_ttl_s", "issuer_secret_arn", "delivery"]
        replaces = changed(olds, news, keys)
        if olds.get("alive") is False:
            replaces.append("alive")  # refresh found the token dead: deliver a new one
        return diff_result(replaces, changed(olds, news, ("ca_cert_pem",)))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        kept = {k: olds.get(k) for k in (WRAPPED_OUTPUT, "accessor", "issued_at", "alive")}
        return dynamic.UpdateResult({**news, **kept})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Use up a never-unwrapped delivery, so nobody can take it later; the token
        inside is revoked when the root token is at hand, and otherwise lapses after one
        period (nobody renews it). A used token lapses the same way once its container
        is gone: the issuer is not allowed to revoke tokens, on purpose."""
        wrapped = props.get(WRAPPED_OUTPUT)
        if not wrapped:
            return
        with props_vault_client(props, wrapped) as client:
            try:
                answer = client.sys.unwrap()
            except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
                return  # unwrapped by its broker, or expired
        accessor = (answer.get("auth") or {}).get("accessor")
        root = (
            root_token_for_cleanup(props, "unused broker token left to lapse")
            if props.get("token_secret_arn")
            else None
        )
        if accessor and root is not None:
            with props_vault_client(props, root) as client:
                client.auth.token.revoke_accessor(accessor)


class BrokerToken(dynamic.Resource, module="keybroker", name="BrokerToken"):
    wrapped_token: pulumi.Output[str]
    accessor: pulumi.Output[str]
    alive: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        vault: VaultAccess,
        issuer_secret_arn: pulumi.Input[str],
        token_secret_arn: pulumi.Input[str],
        role_name: pulumi.Input[str],
        replica: str,
        wrap_ttl_s: float,
        rotation: str,
        delivery: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **vault.props(
                issuer_secret_arn=issuer_secret_arn,
                token_secret_arn=token_secret_arn,  # root token, for cleanup only
                role_name=role_name,
                replica=replica,
                wrap_ttl_s=wrap_ttl_s,
                rotation=rotation,
                delivery=delivery,
                accessor=None,
                issued_at=None,
                alive=None,
            ),
            WRAPPED_OUTPUT: None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=[WRAPPED_OUTPUT])
        super().__init__(
            BrokerTokenProvider(), name, props, pulumi.ResourceOptions.merge(secret_opts, opts)
        )
