"""`keybroker` command line (docs/contracts.md §5).

This module only declares the commands and their options; each command's work lives
in the module that owns it and is imported when the command runs, so that
`keybroker --help` and cold start stay fast.
"""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer

from broker.durations import parse_duration

# Where `keybroker dev` writes its state file, and `check-key --dev` reads it.
DEV_STATE_FILE = Path(".keybroker/dev.json")

app = typer.Typer(
    name="keybroker",
    help="Checks crypto-exchange API keys with the exchange and keeps them in HashiCorp Vault.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(
    help="Vault ACL policies: evaluate, check invariants, show who can reach what.",
    no_args_is_help=True,
)
vault_app = typer.Typer(help="Operate on an existing Vault.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def _version(show: bool) -> None:
    if show:
        try:
            typer.echo(f"keybroker {version('keybroker')}")
        except PackageNotFoundError:  # running from a checkout that was never installed
            typer.echo("keybroker (not installed: no version metadata)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Checks crypto-exchange API keys with the exchange and keeps them in HashiCorp Vault."""


app.add_typer(vault_app, name="vault")
keys_app = typer.Typer(help="Operate on stored exchange keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


class Role(StrEnum):
    site = "site"
    robot = "robot"


class CheckFormat(StrEnum):
    text = "text"
    json = "json"


class CheckReportFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class MatrixFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


class VaultMode(StrEnum):
    devvault = "devvault"
    binary = "binary"


@app.command()
def serve() -> None:
    """Run the broker from configuration (KEYBROKER_* environment, docs/contracts.md §7)."""
    from broker.api.server import serve as run

    raise typer.Exit(run())


@app.command()
def site() -> None:
    """Run the key page: the reference site backend (KEYBROKER_SITE_* environment)."""
    from broker.site.server import serve_site

    raise typer.Exit(serve_site())


@app.command()
def dev(
    state_file: Annotated[
        Path, typer.Option(help="Where to write connection details (mode 0600).")
    ] = DEV_STATE_FILE,
    vault: Annotated[
        VaultMode, typer.Option(help="devvault (in-memory) or a `vault server -dev` binary.")
    ] = (VaultMode.devvault),
    verify_interval: Annotated[
        str,
        typer.Option(help="How often the reference site worker and robot re-verify each key."),
    ] = "60s",
) -> None:
    """Run Vault, the exchange sandbox and the broker locally, all on loopback."""
    try:
        interval = parse_duration(verify_interval)
    except (TypeError, ValueError):
        raise typer.BadParameter(
            "a duration such as 10s, 1m or 60", param_hint="--verify-interval"
        ) from None
    if interval <= 0:
        raise typer.BadParameter("must be positive", param_hint="--verify-interval")
    run = _dev_tool("keybroker_dev.devmode", "run")
    raise typer.Exit(run(state_file=state_file, vault_mode=vault.value, verify_interval=interval))


@app.command("check-key")
def check_key(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. binance.")],
    role: Annotated[Role, typer.Option(help="site (read-only) or robot (read+trade).")],
    api_key: Annotated[
        str | None, typer.Option(envvar="KEYBROKER_API_KEY", show_envvar=True)
    ] = None,
    secret: Annotated[
        str | None, typer.Option(envvar="KEYBROKER_API_SECRET", show_envvar=True)
    ] = None,
    passphrase: Annotated[
        str | None, typer.Option(envvar="KEYBROKER_API_PASSPHRASE", show_envvar=True)
    ] = None,
    format: Annotated[CheckFormat, typer.Option("--format")] = CheckFormat.text,
    dev: Annotated[
        bool, typer.Option(help="Check against the running `keybroker dev` (its state file).")
    ] = False,
    state_file: Annotated[Path, typer.Option(help="The dev state file --dev reads.")] = Path(
        ".keybroker/dev.json"
    ),
    sandbox_key: Annotated[
        str | None, typer.Option(help="With --dev: check this sandbox key (e.g. read_only).")
    ] = None,
    exchange_url: Annotated[
        str | None, typer.Option(help="Base URL of this exchange's API (testnet, sandbox).")
    ] = None,
) -> None:
    """Inspect a key at its exchange and apply the acceptance rules; stores nothing.

    Exit 0 accepted, 1 rejected, 3 retryable (exchange unavailable or rate limited), 2 usage error.
    """
    from broker.exchanges.cli import check_key as run

    raise typer.Exit(
        run(
            exchange=exchange,
            role=role.value,
            api_key=api_key,
            secret=secret,
            passphrase=passphrase,
            output_format=format.value,
            dev=dev,
            state_file=state_file,
            sandbox_key=sandbox_key,
            exchange_url=exchange_url,
        )
    )


@policy_app.command("eval")
def policy_eval(
    policy: Annotated[list[Path] | None, typer.Option(help="HCL policy file (repeatable).")] = None,
    path: Annotated[str | None, typer.Option(help="Request path, e.g. secret/data/foo.")] = None,
    op: Annotated[
        str | None, typer.Option(help="read, list, create, update, patch, delete, recover, help.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Request parameter KEY=JSON (repeatable).")
    ] = None,
    wrap_ttl: Annotated[
        int | None, typer.Option(help="Requested response-wrapping TTL in seconds.")
    ] = None,
    batch: Annotated[
        str | None, typer.Option(help="JSON lines file, or - for standard input.")
    ] = None,
) -> None:
    """Decide one request as Vault would: prints allow or deny (exit 0 allow, 1 deny, 2 error).

    With --batch, every --policy file applies to every line."""
    from policies.eval_cli import run_batch, run_single

    if batch is not None:
        if path is not None or op is not None or param or wrap_ttl is not None:
            typer.echo(
                "keybroker policy eval: error: --path, --op, --param and --wrap-ttl belong "
                "in the batch lines, not beside --batch",
                err=True,
            )
            raise typer.Exit(2)
        raise typer.Exit(run_batch(batch, policy or []))
    raise typer.Exit(run_single(policy or [], path, op, param or [], wrap_ttl))


@policy_app.command("check")
def policy_check(
    policies: Annotated[
        Path | None, typer.Option(help="Directory of *.hcl policies (default: shipped).")
    ] = None,
    invariants: Annotated[
        Path | None, typer.Option(help="Invariants YAML (default: shipped).")
    ] = None,
    format: Annotated[CheckReportFormat, typer.Option("--format")] = CheckReportFormat.text,
) -> None:
    """Check the invariants and the built-in lint rules (exit 0 pass, 1 violation, 2 error)."""
    from policies.check import run_check

    raise typer.Exit(
        run_check(policies_dir=policies, invariants_file=invariants, output_format=format.value)
    )


@policy_app.command("matrix")
def policy_matrix(
    policies: Annotated[
        Path | None, typer.Option(help="Directory of *.hcl policies (default: shipped).")
    ] = None,
    invariants: Annotated[
        Path | None, typer.Option(help="Invariants YAML naming the principals.")
    ] = None,
    format: Annotated[MatrixFormat, typer.Option("--format")] = MatrixFormat.text,
) -> None:
    """Who can do what where: principals x path classes x capabilities."""
    from policies.matrix import run_matrix

    raise typer.Exit(
        run_matrix(policies_dir=policies, invariants_file=invariants, output_format=format.value)
    )


@vault_app.command("bootstrap")
def vault_bootstrap(
    addr: Annotated[
        str, typer.Option(envvar="VAULT_ADDR", help="Vault address, e.g. https://vault:8200.")
    ],
) -> None:
    """Apply keybroker's Vault layout to an existing Vault (token from VAULT_TOKEN). Idempotent."""
    from broker.bootstrap import run_bootstrap

    raise typer.Exit(run_bootstrap(addr=addr))


@keys_app.command("migrate-custody")
def keys_migrate_custody(
    role: Annotated[
        Role | None, typer.Option(help="Only this role's keys (default: site and robot).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
) -> None:
    """Move keys kept under `kv` custody into Transit (token from VAULT_TOKEN; resumable)."""
    from broker.custody.migrate import run_migrate
    from broker.names import ROLES

    roles = (role.value,) if role else ROLES
    raise typer.Exit(run_migrate(roles, dry_run))


class StatusFormat(StrEnum):
    table = "table"
    json = "json"


@keys_app.command("status")
def keys_status(
    broker_url: Annotated[
        str, typer.Option(envvar="KEYBROKER_BROKER_URL", help="The broker's URL.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(envvar="KEYBROKER_TOKEN", help="A Vault token with keybroker-intake."),
    ] = None,
    dev: Annotated[
        bool, typer.Option(help="Ask the running `keybroker dev` (URL and token from its state).")
    ] = False,
    state_file: Annotated[Path, typer.Option(help="The dev state file --dev reads.")] = (
        DEV_STATE_FILE
    ),
    status: Annotated[str | None, typer.Option(help="Only keys in this status.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    role: Annotated[Role | None, typer.Option(help="Only this role.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    output: Annotated[StatusFormat, typer.Option("--format", help="table or json.")] = (
        StatusFormat.table
    ),
    watch: Annotated[
        float | None, typer.Option(help="Repeat every this many seconds until interrupted.")
    ] = None,
    repeat: Annotated[int, typer.Option(help="With --watch: stop after this many (0: never).")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many keys listed.")] = 1000,
) -> None:
    """Keys by health status across accounts, with counts (docs/key-health.md)."""
    from broker.health.cli import StatusError, dev_connection, run_status

    try:
        if dev:
            broker_url, token = dev_connection(state_file)
        if not token:
            raise StatusError("give --token or KEYBROKER_TOKEN (policy keybroker-intake)", 2)
        filters = {
            "status": status or "",
            "exchange": exchange or "",
            "role": role.value if role else "",
            "account": account or "",
        }
        code = run_status(
            broker_url,
            token,
            filters,
            as_json=output == StatusFormat.json,
            watch=watch,
            repeat=repeat,
            limit=limit,
            echo=typer.echo,
        )
    except StatusError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def devvault(
    host: str = "127.0.0.1",
    port: int = 8200,
    root_token: Annotated[
        str | None, typer.Option(help="Root token (random and printed when not given).")
    ] = None,
) -> None:
    """Run only the in-memory Vault-API-compatible server, unsealed, until interrupted."""
    run_forever = _dev_tool("keybroker_dev.devvault.server", "run_forever")
    raise typer.Exit(run_forever(host=host, port=port, root_token=root_token))


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8300,
    keys: Annotated[
        Path | None, typer.Option(help="JSON file of sandbox keys (default: built-in set).")
    ] = None,
) -> None:
    """Run only the exchange sandbox; prints its base URL, exchange URLs and keys as JSON."""
    run_forever = _dev_tool("keybroker_dev.sandbox.server", "run_forever")
    raise typer.Exit(run_forever(host=host, port=port, keys_file=keys))


def _dev_tool(module: str, name: str) -> Any:
    """A function of the doubles' distribution, or a clear exit when it is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("keybroker_dev"):
            raise
        typer.echo(
            "error: this command runs keybroker's local doubles (devvault, the exchange "
            "sandbox), which are not installed. From a checkout: pip install ./devtools "
            "(or run `make dev`).",
            err=True,
        )
        raise typer.Exit(2) from None


def main() -> None:
    # Typer/click already exit 2 on usage errors, as docs/contracts.md §5 asks.
    sys.exit(app())
