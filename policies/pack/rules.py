"""The keybroker deployment policies (pulumi-policy), one small function per check.

Mandatory rules stop `pulumi preview/up`; advisory ones warn. Every rule carries a
remediation text, repeated in each violation message. Rules never echo property
values: CrossGuard shows them secrets in plaintext (docs/facts/pulumi.md §4).
Hardening facts: docs/facts/pulumi.md §7 (HashiCorp production hardening).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from broker.durations import parse_duration
from broker.names import SITE_TOKEN_MAX_TTL_S, SITE_TOKEN_TTL_S
from policies.analysis import Principal, find_granted
from policies.hcl import PolicyParseError, parse_policy
from policies.pack import props as p

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY
DEFAULT_MAX_SITE_TOKEN_TTL_S = SITE_TOKEN_MAX_TTL_S  # docs/contracts.md §2
KEY_OPERATIONS = ("read", "list", "create", "update", "patch", "delete")
# KV v2 API prefixes under which a key (or its versions) can be reached.
KV_PREFIXES = ("data", "metadata", "delete", "undelete", "destroy")
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSPHRASE", "PRIVATE_KEY", "ACCESS_KEY")
# Names that point at a secret's location rather than hold it.
REFERENCE_SUFFIXES = ("_FILE", "_PATH", "_CACERT", "_CAPATH", "_ROLE", "_ROLE_ID", "_TTL")
SECRET_VALUE_PREFIXES = ("hvs.", "hvb.", "hvr.", "s.", "b.", "AKIA", "ASIA", "-----BEGIN")


def _reporter(report: ReportViolation, remediation: str) -> Callable[[str], None]:
    return lambda message: report(f"{message} Remediation: {remediation}", None)


def _is_container(
    resource: ResourceValidationArgs | PolicyResource, role: str | None = None
) -> bool:
    """A Docker container (of `role`, "vault" or "broker", when given)."""
    return resource.resource_type == p.CONTAINER and (
        role is None or p.role(resource.props) == role
    )


# --- Vault containers ---------------------------------------------------------------------

NO_DEV_MODE = (
    'Run `vault server` with a config file: set the container command to ["server"]'
    " (the official image defaults to `server -dev`) and drop every -dev flag and"
    " VAULT_DEV_* variable."
)


def check_vault_not_dev(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "vault"):
        return
    fail = _reporter(report, NO_DEV_MODE)
    command = [str(c) for c in args.props.get("command") or []]
    entry = [str(c) for c in args.props.get("entrypoints") or []]
    if not command or command[0] != "server":
        fail(
            "The Vault container does not run `vault server` explicitly (image default: dev mode)."
        )
    if any(arg.startswith(("-dev", "--dev")) for arg in command + entry):
        fail("The Vault container is started with a -dev flag (in-memory, unsealed, root token).")
    dev_envs = [k for k in p.envs(args.props) if k.startswith("VAULT_DEV_")]
    if dev_envs:
        fail(f"The Vault container sets dev-mode variables: {', '.join(sorted(dev_envs))}.")


TLS_ON = (
    'Give every `listener "tcp"` tls_cert_file and tls_key_file, never tls_disable,'
    " tls_min_version tls12 or tls13, and upload the config into /vault/config/."
)


def check_vault_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "vault"):
        return
    fail = _reporter(report, TLS_ON)
    environment = p.envs(args.props)
    if "VAULT_LOCAL_CONFIG" in environment:
        fail("VAULT_LOCAL_CONFIG carries server config in an environment variable.")
    if environment.get("VAULT_ADDR", "").startswith("http://"):
        fail("VAULT_ADDR uses http://.")
    configs = p.server_configs(args.props)
    if not configs:
        fail("No Vault server config is uploaded into /vault/config/: TLS cannot be verified.")
    for file, text in configs:
        try:
            listeners = p.blocks(text, "listener")
        except ValueError as exc:
            fail(f"{file}: {exc}.")
            continue
        if not listeners:
            fail(f"{file} has no listener block.")
        for listener in listeners:
            where = f'{file}: listener "{listener["__label__"]}"'
            if p.truthy(listener.get("tls_disable")):
                fail(f"{where} disables TLS.")
            elif not listener.get("tls_cert_file") or not listener.get("tls_key_file"):
                fail(f"{where} has no tls_cert_file/tls_key_file.")
            if str(listener.get("tls_min_version", "tls12")) in ("tls10", "tls11"):
                fail(f"{where} allows TLS below 1.2.")


AUTO_UNSEAL = (
    'Add a `seal "awskms"` stanza (or another auto-unseal seal) so nodes unseal on'
    " restart without shared unseal keys."
)


def check_vault_auto_unseal(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "vault"):
        return
    fail = _reporter(report, AUTO_UNSEAL)
    for file, text in p.server_configs(args.props):
        try:
            seals = p.blocks(text, "seal")
        except ValueError:
            continue  # reported by the TLS rule
        if not seals:
            fail(f"{file} has no seal stanza (Shamir: manual unseal after each restart).")
        elif all(p.truthy(seal.get("disabled")) for seal in seals):
            fail(f"{file} only has a disabled seal (a seal migration is under way).")


TELEMETRY = (
    "Give every Vault node a `telemetry` stanza with prometheus_retention_time above"
    " the scrape interval (keybroker:vaultTelemetryRetention): without it, nothing"
    " shows a sealed, leaderless or failing node."
)


def check_vault_telemetry(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "vault"):
        return
    fail = _reporter(report, TELEMETRY)
    configs = p.server_configs(args.props)
    if not configs:
        fail(f"Vault node {args.name} has no uploaded server config: no telemetry.")
    for file, text in configs:
        try:
            retention = p.attribute(text, "telemetry")
        except PolicyParseError:
            continue  # reported by the TLS rule
        if not isinstance(retention, Mapping):
            fail(f"{file} has no telemetry stanza.")
            continue
        seconds = _seconds(str(retention.get("prometheus_retention_time") or "0"))
        if not seconds:
            fail(f"{file} keeps no Prometheus metrics (prometheus_retention_time unset or 0).")


EXPLICIT_MLOCK = (
    "Write `disable_mlock = true` (Raft, swap off) or `false` (with IPC_LOCK) explicitly:"
    " Vault 1.20+ refuses an implicit value with integrated storage."
)


def check_vault_mlock_explicit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "vault"):
        return
    fail = _reporter(report, EXPLICIT_MLOCK)
    for file, text in p.server_configs(args.props):
        try:
            if p.attribute(text, "disable_mlock") is None:
                fail(f"{file} leaves disable_mlock implicit.")
        except PolicyParseError:
            continue


# --- every container ----------------------------------------------------------------------

NO_PLAIN_SECRETS = (
    "Deliver secrets as files from secret inputs (uploads marked secret, or response-"
    "wrapped tokens unwrapped at start), never as environment variables; keep only"
    " locations (…_FILE) in the environment."
)


def _secret_name(name: str) -> bool:
    upper = name.upper()
    if upper.endswith(REFERENCE_SUFFIXES):
        return False
    return any(part in upper for part in SECRET_NAME_PARTS)


def check_no_plain_secret_env(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args):
        return
    fail = _reporter(report, NO_PLAIN_SECRETS)
    for name, value in sorted(p.envs(args.props).items()):
        if _secret_name(name):
            fail(f"Environment variable {name} holds a secret by its name.")
        elif value.startswith(SECRET_VALUE_PREFIXES):
            fail(f"Environment variable {name} holds a value shaped like a token or key.")


PINNED = (
    "Reference images as repo@sha256:<digest> (or by the built image's sha256 id), so"
    " that what runs is what was reviewed."
)


def check_images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    fail = _reporter(report, PINNED)
    if _is_container(args):
        if not p.pinned(str(args.props.get("image") or "")):
            fail(f"Container {args.name} uses an image not pinned by digest.")
    elif (
        args.resource_type == p.REMOTE_IMAGE
        and not args.props.get("build")
        and not p.pinned(str(args.props.get("name") or ""))
    ):
        fail(f"Image {args.name} is pulled by tag, not by digest.")


BROKER_HARDENED = (
    "Run the broker with user 10001:10001, read_only=True, security_opts"
    " [no-new-privileges:true], capabilities.drops [ALL] and no adds, memory and cpus"
    " limits, a health check, not privileged, not on the host network."
)


def check_broker_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "broker"):
        return
    fail = _reporter(report, BROKER_HARDENED)
    props = args.props
    user = str(props.get("user") or "").split(":")[0]
    if user in ("", "0", "root"):
        fail("The broker runs as root.")
    if props.get("readOnly") is not True:
        fail("The broker's root filesystem is writable.")
    if not any(
        str(o).startswith("no-new-privileges") and not str(o).endswith("false")
        for o in props.get("securityOpts") or []
    ):
        fail("The broker may gain privileges (no-new-privileges is not set).")
    caps = props.get("capabilities") or {}
    if "ALL" not in [str(c).upper() for c in caps.get("drops") or []]:
        fail("The broker keeps Linux capabilities (drops does not hold ALL).")
    if caps.get("adds"):
        fail("The broker adds Linux capabilities.")
    if not props.get("memory"):
        fail("The broker has no memory limit.")
    if not (props.get("cpus") or props.get("cpuShares") or props.get("cpuQuota")):
        fail("The broker has no CPU limit.")
    tests = (props.get("healthcheck") or {}).get("tests") or []
    if not tests or str(tests[0]).upper() == "NONE":
        fail("The broker has no health check.")
    if props.get("privileged"):
        fail("The broker is privileged.")
    if str(props.get("networkMode") or "") == "host":
        fail("The broker shares the host's network namespace.")


LOOPBACK_IN_DEV = (
    "In dev, publish ports with ip=127.0.0.1 (or ::1); Docker's default is 0.0.0.0,"
    " every interface. Never publish_all_ports, never network_mode=host."
)


def check_dev_ports_loopback(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args):
        return
    if p.environment(args.props, args.get_config()) != "dev":
        return
    fail = _reporter(report, LOOPBACK_IN_DEV)
    for port in args.props.get("ports") or []:
        ip = str(port.get("ip") or "0.0.0.0")
        try:
            loopback = ipaddress.ip_address(ip).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            fail(f"Container {args.name} publishes port {port.get('internal')} beyond loopback.")
    if args.props.get("publishAllPorts"):
        fail(f"Container {args.name} publishes all its ports on every interface.")
    if str(args.props.get("networkMode") or "") == "host":
        fail(f"Container {args.name} uses the host network.")


NOT_PRIVILEGED = "Remove privileged, and host network/pid/ipc modes: they undo container isolation."


def check_not_privileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args):
        return
    fail = _reporter(report, NOT_PRIVILEGED)
    if args.props.get("privileged"):
        fail(f"Container {args.name} is privileged.")
    for key in ("networkMode", "pidMode", "ipcMode"):
        if str(args.props.get(key) or "") == "host":
            fail(f"Container {args.name} sets {key}=host.")


PUBLIC_PORTS = (
    "Publish on 127.0.0.1 (or a private address) and put a TLS reverse proxy or load"
    " balancer in front; 0.0.0.0 exposes Vault and the broker on every interface."
)


def check_no_wildcard_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Everywhere (dev has the mandatory rule): no port published on all interfaces."""
    if not _is_container(args):
        return
    for port in args.props.get("ports") or []:
        if str(port.get("ip") or "0.0.0.0") in ("0.0.0.0", "::"):
            _reporter(report, PUBLIC_PORTS)(
                f"Container {args.name} publishes port {port.get('internal')} on every interface."
            )


BROKER_VAULT_TLS = (
    "Point KEYBROKER_VAULT_ADDR at https:// and give KEYBROKER_VAULT_CACERT the stack's CA."
)


def check_broker_talks_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args, "broker"):
        return
    env = p.envs(args.props)
    if not env.get("KEYBROKER_VAULT_ADDR", "").startswith("https://"):
        _reporter(report, BROKER_VAULT_TLS)("The broker reaches Vault without TLS.")
    elif not env.get("KEYBROKER_VAULT_CACERT"):
        _reporter(report, BROKER_VAULT_TLS)("The broker does not pin the stack's CA.")


RESTART = "Set restart to unless-stopped (Vault) or on-failure (broker) so outages heal."


def check_restart_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_container(args) or args.props.get("start") is False:
        return  # a never-started container (e.g. the broker's seed) has nothing to restart
    if str(args.props.get("restart") or "no") not in ("always", "unless-stopped", "on-failure"):
        _reporter(report, RESTART)(f"Container {args.name} is never restarted.")


# --- the Vault layout (VaultConfig resource) ---------------------------------------------


def _layout(props: Mapping[str, Any]) -> Mapping[str, Any]:
    layout = props.get("layout")
    return layout if isinstance(layout, Mapping) else {}


SITE_TOKEN_LIMITS = (
    "Keep the site token role batch-typed, not renewable, with its max TTL at most the"
    " cap (15m by default) and the default TTL below it, token_bound_cidrs naming the"
    " site's egress networks (never 0.0.0.0/0), and the broker's"
    " KEYBROKER_SITE_TOKEN_MAX_TTL set to that max (Vault cannot cap batch tokens by"
    " role; the broker does)."
)


def _site_token_cap(args: ResourceValidationArgs) -> float:
    return float(args.get_config().get("maxSiteTokenTtlSeconds", DEFAULT_MAX_SITE_TOKEN_TTL_S))


def _seconds(value: str | float) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None


def check_broker_token_cap(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """For batch site tokens the broker holds the cap (broker/layout.py TokenRole)."""
    if not _is_container(args, "broker"):
        return
    fail = _reporter(report, SITE_TOKEN_LIMITS)
    cap = _site_token_cap(args)
    env = p.envs(args.props)
    # Unset means the broker's defaults (docs/contracts.md §7).
    max_ttl = _seconds(env.get("KEYBROKER_SITE_TOKEN_MAX_TTL", SITE_TOKEN_MAX_TTL_S))
    ttl = _seconds(env.get("KEYBROKER_SITE_TOKEN_TTL", SITE_TOKEN_TTL_S))
    if max_ttl is None or not 0 < max_ttl <= cap:
        fail(f"The broker's KEYBROKER_SITE_TOKEN_MAX_TTL is not within (0, {cap:g}s].")
    elif ttl is None or ttl > max_ttl:
        fail("The broker's KEYBROKER_SITE_TOKEN_TTL exceeds its max TTL.")


def check_site_token_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != p.VAULT_CONFIG:
        return
    fail = _reporter(report, SITE_TOKEN_LIMITS)
    cap = _site_token_cap(args)
    role = _layout(args.props).get("site_token_role") or {}
    if not role:
        fail("The layout declares no site token role.")
        return
    max_ttl = float(role.get("explicit_max_ttl") or 0)
    if not 0 < max_ttl <= cap:
        fail(f"The site token role's explicit max TTL is not within (0, {cap:g}s].")
    if float(role.get("default_ttl") or 0) > max_ttl:
        fail("The site token role's default TTL exceeds its explicit max TTL.")
    if role.get("token_type") != "batch":
        fail("Site tokens are not batch tokens (they could be renewed or create children).")
    if role.get("renewable"):
        fail("Site tokens are renewable.")
    cidrs = [str(c) for c in role.get("bound_cidrs") or []]
    if not cidrs:
        fail("Site tokens are not bound to any CIDR.")
    for cidr in cidrs:
        try:
            if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
                fail("A site token CIDR binding admits every address.")
        except ValueError:
            fail("A site token CIDR binding is not a network.")


def _unreachable(
    args: ResourceValidationArgs,
    report: ReportViolation,
    remediation: str,
    *,
    principal_name: str,
    policy_names: list[str],
    forbidden_role: str,
) -> None:
    """No path of `forbidden_role`'s keys grants any key operation to the principal."""
    fail = _reporter(report, remediation)
    layout = _layout(args.props)
    texts = layout.get("policies") or {}
    mount = str(layout.get("mount") or "")
    missing = [name for name in policy_names if name not in texts]
    if missing:
        fail(
            f"The {principal_name} policies {', '.join(missing)} are not in the layout:"
            " unverifiable."
        )
        return
    try:
        policies = [parse_policy(str(texts[name]), name=name) for name in policy_names]
    except PolicyParseError as exc:
        fail(f"A {principal_name} policy does not parse: {exc}.")
        return
    principal = Principal(principal_name, policies)
    for prefix in KV_PREFIXES:
        hit = find_granted(principal, f"{mount}/{prefix}/{forbidden_role}/*", KEY_OPERATIONS)
        if hit is not None:
            sources = hit.rule.sources if hit.rule is not None else ()
            where = "".join(f" [{r.policy} line {r.line}: path {r.path!r}]" for r in sources)
            fail(f"{principal_name.capitalize()} tokens may {hit.capability} {hit.path}{where}.")
            return


SITE_NOT_ROBOT = (
    "Remove from the site policies (the site token role's allowed_policies) every path"
    " that matches <mount>/{data,metadata,delete,undelete,destroy}/robot/...; use `+`"
    " segments under site/ only."
)


def check_site_cannot_reach_robot(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != p.VAULT_CONFIG:
        return
    role = _layout(args.props).get("site_token_role") or {}
    _unreachable(
        args,
        report,
        SITE_NOT_ROBOT,
        principal_name="site",
        policy_names=[str(n) for n in role.get("allowed_policies") or []],
        forbidden_role="robot",
    )


ROBOT_NOT_SITE = (
    "Remove from the robot AppRole's token policies every path under"
    " <mount>/*/site/...; the robot reads robot keys only."
)


def check_robot_cannot_reach_site(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != p.VAULT_CONFIG:
        return
    for approle in _layout(args.props).get("approles") or []:
        names = [str(n) for n in approle.get("token_policies") or []]
        if any(n.endswith("robot-read") for n in names):
            _unreachable(
                args,
                report,
                ROBOT_NOT_SITE,
                principal_name="robot",
                policy_names=names,
                forbidden_role="site",
            )


# --- whole-stack checks -------------------------------------------------------------------

AUDIT = (
    "Declare at least two audit devices in the layout (e.g. a file on the log volume and"
    " stdout): Vault refuses requests when its only audit device fails."
)


def _vault_nodes(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if _is_container(r, "vault")]


def check_audit_devices(args: StackValidationArgs, report: ReportViolation) -> None:
    fail = _reporter(report, AUDIT)
    vaults = _vault_nodes(args)
    configs = [r for r in args.resources if r.resource_type == p.VAULT_CONFIG]
    if vaults and not configs:
        fail("The stack runs Vault but configures no audit devices (no VaultConfig resource).")
    for config in configs:
        devices = _layout(config.props).get("audit_devices") or []
        paths = {str(d.get("path", "")).strip("/") for d in devices}
        if len(paths) < 2:
            fail(f"{config.name} declares {len(paths)} audit device(s), fewer than 2.")


def _stack_environment(args: StackValidationArgs) -> str | None:
    for r in args.resources:
        if _is_container(r):
            env = p.environment(r.props, args.get_config())
            if env:
                return env
    return args.get_config().get("environment")


HA = (
    "Run 3 Vault nodes (keybroker:vaultNodes: 3) on 3 Docker hosts"
    " (keybroker:dockerHosts) in prod: Raft needs a quorum to fail over."
)


def check_ha_in_prod(args: StackValidationArgs, report: ReportViolation) -> None:
    if _stack_environment(args) != "prod":
        return
    nodes = _vault_nodes(args)
    if len(nodes) < 3:
        _reporter(report, HA)(f"The prod stack runs {len(nodes)} Vault node(s).")
    elif len({p.host(n.props) for n in nodes}) == 1:
        _reporter(report, HA)("Every Vault node runs on one host: the cluster dies with it.")


SPREAD = (
    "List one Docker host per Vault node in keybroker:dockerHosts: Raft keeps working"
    " only while a quorum of nodes is up, so no host may hold a quorum by itself."
)


def check_vault_nodes_spread(args: StackValidationArgs, report: ReportViolation) -> None:
    """On several hosts, losing any one host must leave a Raft quorum."""
    nodes = _vault_nodes(args)
    hosts = {p.host(r.props) for r in args.resources if _is_container(r)}
    if len(nodes) < 3 or len(hosts) < 2:
        return  # one host: vault-ha-in-prod warns in prod
    quorum = len(nodes) // 2 + 1
    per_host: dict[str, int] = {}
    for node in nodes:
        per_host[p.host(node.props)] = per_host.get(p.host(node.props), 0) + 1
    crowded = sorted(h for h, count in per_host.items() if count >= quorum)
    if crowded:
        _reporter(report, SPREAD)(
            f"Host {', '.join(crowded)} runs {max(per_host.values())} of {len(nodes)} Vault"
            " nodes: losing it loses the quorum."
        )


REPLICAS = (
    "Run at least two broker replicas in prod (keybroker:brokerReplicas), on different"
    " hosts where there are several, behind the load balancer."
)


def check_broker_replicas_in_prod(args: StackValidationArgs, report: ReportViolation) -> None:
    if _stack_environment(args) != "prod":
        return
    brokers = [r for r in args.resources if _is_container(r, "broker")]
    if len(brokers) < 2:
        _reporter(report, REPLICAS)(f"The prod stack runs {len(brokers)} broker replica(s).")


REVOKE = (
    "Keep keybroker:revokeRootToken true in prod: the initial root token must not outlive setup."
)


def check_root_revoked_in_prod(args: StackValidationArgs, report: ReportViolation) -> None:
    if _stack_environment(args) != "prod":
        return
    if not any(r.resource_type == p.ROOT_REVOCATION for r in args.resources):
        _reporter(report, REVOKE)("The prod stack never revokes the initial root token.")


# --- the pack's policy list ---------------------------------------------------------------

_TTL_SCHEMA = PolicyConfigSchema(
    properties={
        "maxSiteTokenTtlSeconds": {"type": "number", "default": DEFAULT_MAX_SITE_TOKEN_TTL_S}
    }
)


_Kind = TypeVar("_Kind", ResourceValidationPolicy, StackValidationPolicy)


def _policy(
    kind: type[_Kind],
    name: str,
    description: str,
    fn: Any,
    level: EnforcementLevel,
    severity: Severity,
    remediation: str,
    **extra: Any,
) -> _Kind:
    return kind(
        name=name,
        description=description,
        validate=fn,
        enforcement_level=level,
        severity=severity,
        remediation_steps=remediation,
        **extra,
    )


_resource = partial(_policy, ResourceValidationPolicy)
_stack = partial(_policy, StackValidationPolicy)


POLICIES: list[Policy] = [
    _resource(
        "vault-no-dev-mode",
        "Vault never runs in dev mode.",
        check_vault_not_dev,
        MANDATORY,
        Severity.CRITICAL,
        NO_DEV_MODE,
    ),
    _resource(
        "vault-tls",
        "Every Vault listener serves TLS 1.2+.",
        check_vault_tls,
        MANDATORY,
        Severity.CRITICAL,
        TLS_ON,
    ),
    _stack(
        "vault-audit-devices",
        "Vault has at least two audit devices.",
        check_audit_devices,
        MANDATORY,
        Severity.HIGH,
        AUDIT,
    ),
    _resource(
        "no-plain-secret-env",
        "No secret in a plain container environment variable.",
        check_no_plain_secret_env,
        MANDATORY,
        Severity.CRITICAL,
        NO_PLAIN_SECRETS,
    ),
    _resource(
        "images-pinned-by-digest",
        "Images are pinned by digest.",
        check_images_pinned,
        MANDATORY,
        Severity.HIGH,
        PINNED,
    ),
    _resource(
        "broker-hardened",
        "The broker container is locked down.",
        check_broker_hardened,
        MANDATORY,
        Severity.HIGH,
        BROKER_HARDENED,
    ),
    _resource(
        "dev-ports-loopback",
        "Dev stacks publish ports on loopback only.",
        check_dev_ports_loopback,
        MANDATORY,
        Severity.HIGH,
        LOOPBACK_IN_DEV,
    ),
    _resource(
        "site-token-ttl-capped-cidr-bound",
        "Site tokens are short-lived batch tokens bound to CIDRs.",
        [check_site_token_limits, check_broker_token_cap],
        MANDATORY,
        Severity.HIGH,
        SITE_TOKEN_LIMITS,
        config_schema=_TTL_SCHEMA,
    ),
    _resource(
        "site-cannot-reach-robot-keys",
        "Site token policies grant nothing on robot keys (exact ACL analysis).",
        check_site_cannot_reach_robot,
        MANDATORY,
        Severity.CRITICAL,
        SITE_NOT_ROBOT,
    ),
    _resource(
        "robot-cannot-reach-site-keys",
        "Robot policies grant nothing on site keys (exact ACL analysis).",
        check_robot_cannot_reach_site,
        ADVISORY,
        Severity.HIGH,
        ROBOT_NOT_SITE,
    ),
    _resource(
        "vault-telemetry",
        "Every Vault node exports Prometheus metrics.",
        check_vault_telemetry,
        MANDATORY,
        Severity.MEDIUM,
        TELEMETRY,
    ),
    _stack(
        "vault-nodes-spread",
        "No Docker host holds a Raft quorum by itself.",
        check_vault_nodes_spread,
        MANDATORY,
        Severity.HIGH,
        SPREAD,
    ),
    _stack(
        "broker-replicas-in-prod",
        "Prod runs two or more broker replicas.",
        check_broker_replicas_in_prod,
        MANDATORY,
        Severity.MEDIUM,
        REPLICAS,
    ),
    _resource(
        "vault-auto-unseal",
        "Vault unseals itself through a KMS seal.",
        check_vault_auto_unseal,
        ADVISORY,
        Severity.MEDIUM,
        AUTO_UNSEAL,
    ),
    _resource(
        "vault-mlock-explicit",
        "disable_mlock is set explicitly.",
        check_vault_mlock_explicit,
        ADVISORY,
        Severity.MEDIUM,
        EXPLICIT_MLOCK,
    ),
    _resource(
        "containers-not-privileged",
        "No privileged or host-namespace container.",
        check_not_privileged,
        ADVISORY,
        Severity.HIGH,
        NOT_PRIVILEGED,
    ),
    _resource(
        "no-wildcard-ports",
        "No port is published on every interface.",
        check_no_wildcard_ports,
        ADVISORY,
        Severity.MEDIUM,
        PUBLIC_PORTS,
    ),
    _resource(
        "broker-vault-tls",
        "The broker talks to Vault over TLS with the stack's CA.",
        check_broker_talks_tls,
        ADVISORY,
        Severity.HIGH,
        BROKER_VAULT_TLS,
    ),
    _resource(
        "containers-restart",
        "Containers restart after failures.",
        check_restart_policy,
        ADVISORY,
        Severity.LOW,
        RESTART,
    ),
    _stack(
        "vault-ha-in-prod",
        "Prod runs a 3-node Raft cluster over several hosts.",
        check_ha_in_prod,
        ADVISORY,
        Severity.MEDIUM,
        HA,
    ),
    _stack(
        "root-token-revoked-in-prod",
        "Prod revokes the initial root token.",
        check_root_revoked_in_prod,
        ADVISORY,
        Severity.HIGH,
        REVOKE,
    ),
]
