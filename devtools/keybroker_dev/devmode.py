"""`keybroker dev`: Vault, the exchange sandbox and the broker on loopback (docs/contracts.md §6).

One process tree: devvault and the sandbox run in this process (threads), or a real
`vault server -dev` child with `--vault binary`. The layout is applied with the same
`apply_layout` as `keybroker vault bootstrap`; the broker logs in with its own AppRole
and sends its exchange requests to the sandbox. Connection details (which include
tokens and sandbox secrets) go only to the state file, created with mode 0600; the
terminal gets the file's path and commands that read it, one access line per broker
request (method, path, status, time; never a header or body) and the audit log's path.

One instance per state directory: a lock file there (`.keybroker-dev.lock`, holding the
owner's pid) keeps a second `keybroker dev` from overwriting the first one's state file,
logs and, on exit, deleting its state file.

Addresses (broker/config.py): the sandbox sees every caller, site and robot alike, at
its simulated public address 203.0.113.10: that is both roles' exchange egress, what a
sandbox key's whitelist holds. Site tokens and robot logins come from this machine:
both roles' Vault CIDRs are loopback. MEXC rights that cannot be read are accepted with
a warning (ACCEPT_UNVERIFIABLE=mexc) and futures rights on Deribit, whose trade scope
always includes them (ALLOW_FUTURES=deribit), so that every good sandbox key is accepted.

Custody (docs/custody.md): the broker's default, `transit` for both roles, unless the
shell sets KEYBROKER_SITE_CUSTODY / KEYBROKER_ROBOT_CUSTODY; the terminal says which.
The KV and Transit mounts are always the ones the layout created, whatever the shell's
KEYBROKER_KV_MOUNT / KEYBROKER_TRANSIT_MOUNT say.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import hvac
import requests
from pydantic import SecretStr

from broker.bootstrap import apply_layout, create_caller_token, issue_approle_credentials
from broker.layout import INTAKE_POLICY, SITE_BACKEND_POLICY, build_layout
from keybroker_dev.ports import free_port
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP  # the sandbox's simulated client IP

LOOPBACK_CIDR = "127.0.0.1/32"
LOCK_NAME = ".keybroker-dev.lock"
# Settings dev mode sets beyond addresses (module docstring): exchanges where a right the
# exchange cannot report, or a futures right, is accepted.
ACCEPT_UNVERIFIABLE = frozenset({"mexc"})
ALLOW_FUTURES = frozenset({"deribit"})
CALLER_TOKEN_TTL = "24h"
# Dev mode's verification schedule (the default is 6 h): changes made at the sandbox show
# within a minute; a key unverified for two minutes is `unverified`.
DEV_VERIFY_INTERVAL = 60.0
VAULT_START_TIMEOUT = 30.0

Say = Callable[[str], None]


class DevModeError(Exception):
    """Dev mode cannot start; the message says what to do."""


class _Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class DevState:
    """What the state file holds (docs/contracts.md §6, plus the robot's AppRole).

    Tokens, sandbox keys and the secret-id belong in the 0600 file only, never in a repr.
    """

    broker_url: str
    vault_addr: str
    root_token: str = field(repr=False)
    intake_token: str = field(repr=False)
    site_backend_token: str = field(repr=False)
    sandbox_url: str
    sandbox_keys: dict[str, dict[str, dict[str, str]]] = field(repr=False)
    robot_role_id: str
    robot_secret_id: str = field(repr=False)
    # The broker's settings that decide a key check (no secret): `check-key --dev`
    # applies them, so that it judges a key as this broker does.
    check_settings: dict[str, Any] = field(default_factory=dict)
    ui_url: str = ""  # the key page (broker/site), served with the intake token kept here

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- the state file ----------------------------------------------------------------------


def _private_dir(path: Path) -> None:
    """Create the state file's directory 0700. An existing one is left as it is: the
    user may have pointed --state-file into a shared directory such as /tmp."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)


def write_state_file(path: Path, state: DevState) -> None:
    """Write atomically; the file is 0600 from its first byte, its new parent dir 0700."""
    parent = path.parent
    _private_dir(parent)
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"
    with suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(state.to_json(), out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


class StateDirLock:
    """An exclusive flock on `<dir>/.keybroker-dev.lock`, which holds the owner's pid.

    The kernel drops the lock when its holder exits, however it exits: a stale lock file
    never blocks the next run.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DevModeError(
                f"another `keybroker dev` (pid {holder}) is running with the state directory "
                f"{directory}; stop it, or give this one its own directory with "
                "--state-file OTHER_DIR/dev.json"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def stop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


# --- Vault: in-process devvault or a `vault server -dev` child ---------------------------


class _BinaryVault:
    """A real `vault server -dev` on a free loopback port; stopped with SIGTERM."""

    def __init__(self, log_path: Path) -> None:
        binary = shutil.which("vault")
        if binary is None:
            raise DevModeError(
                "--vault binary needs a `vault` binary on PATH; install Vault or use"
                " --vault devvault (the in-memory server)"
            )
        self.root_token = secrets.token_urlsafe(24)
        port = free_port()
        self.addr = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        # Passed in the environment rather than argv, so `ps` does not show the token.
        env["VAULT_DEV_ROOT_TOKEN_ID"] = self.root_token
        env["VAULT_DEV_LISTEN_ADDRESS"] = f"127.0.0.1:{port}"
        # The dev server prints its root token: the log is as private as the state file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._log = os.fdopen(os.open(log_path, flags, 0o600), "ab")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, binary from PATH
            # -dev-no-store-token: leave the user's ~/.vault-token alone.
            [binary, "server", "-dev", "-dev-no-store-token"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + VAULT_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DevModeError(f"`vault server -dev` exited with {self._proc.returncode}")
            with suppress(requests.RequestException):
                if requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise DevModeError("`vault server -dev` did not become ready in time")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def _import_broker() -> None:
    with suppress(ImportError):  # reported properly when the broker is started
        importlib.import_module("broker.api.app")


# --- the whole stack ---------------------------------------------------------------------


class DevStack:
    """Starts the parts in order and stops them in reverse, also when a start fails."""

    def __init__(
        self,
        state_file: Path,
        vault_mode: str,
        say: Say,
        access_log: Say | None = None,
        *,
        verify_interval: float = DEV_VERIFY_INTERVAL,
    ) -> None:
        if vault_mode not in ("devvault", "binary"):
            raise DevModeError(f"unknown vault mode {vault_mode!r}: use devvault or binary")
        if not verify_interval > 0:
            raise DevModeError("the verification interval must be positive")
        self.verify_interval = verify_interval
        self.state_file = state_file
        self.vault_mode = vault_mode
        self.say = say
        self.access_log = access_log
        self._stack = ExitStack()
        self.state: DevState | None = None
        self.custody = ""  # e.g. "site transit, robot transit", once the broker runs

    def start(self, on_ready: Callable[[], None] | None = None) -> DevState:
        """Start every part; `on_ready` runs once all run, just before the state file
        (the sign of readiness) is written."""
        try:
            return self._start(on_ready)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stack.close()

    def _own(self, part: _Stoppable) -> None:
        self._stack.callback(part.stop)

    def _start(self, on_ready: Callable[[], None] | None) -> DevState:
        _private_dir(self.state_file.parent)  # before anything writes logs into it
        self._own(StateDirLock(self.state_file.parent))  # before anything is written there
        # The broker's imports (FastAPI, ccxt) take seconds: load them while Vault and
        # the sandbox start.
        warm_up = threading.Thread(target=_import_broker, name="import-broker", daemon=True)
        warm_up.start()
        vault_addr, root_token = self._start_vault()
        self.say(f"  Vault: {vault_addr}")
        sandbox = self._start_sandbox()
        self.say(f"  sandbox: {sandbox.base_url} ({len(sandbox.exchange_urls)} exchanges)")
        client = hvac.Client(url=vault_addr, token=root_token, timeout=10)

        self.say("Applying the Vault layout (mount, policies, token role, AppRoles)")
        # Site tokens are bound to loopback (the site runs here); the robot logs in
        # from loopback too. ROBOT_EGRESS_IP is everyone's address *at the exchange*.
        layout = build_layout(site_token_cidrs=(LOOPBACK_CIDR,), robot_cidrs=(LOOPBACK_CIDR,))
        apply_layout(client, layout, on_step=lambda line: self.say(f"  {line}"))
        broker_creds = issue_approle_credentials(client, "keybroker-broker")
        robot_creds = issue_approle_credentials(client, "keybroker-robot")
        intake_token = create_caller_token(
            client, [INTAKE_POLICY], CALLER_TOKEN_TTL, display_name="dev-intake"
        )
        site_backend_token = create_caller_token(
            client, [SITE_BACKEND_POLICY], CALLER_TOKEN_TTL, display_name="dev-site-backend"
        )

        check_settings = dev_check_settings(dict(sandbox.exchange_urls))
        broker_url = self._start_broker(
            vault_addr=vault_addr,
            role_id=broker_creds.role_id,
            secret_id=broker_creds.secret_id,
            check_settings=check_settings,
            mount=layout.mount,
            transit_mount=layout.transit_mount,
        )
        self.say(f"  broker: {broker_url} (API docs: {broker_url}/docs)")
        self.say(f"  custody: {self.custody} (docs/custody.md)")
        self.say(f"  audit log: {self.audit_log}")
        ui_url = self._start_site(broker_url, intake_token)
        self.say(f"  key page: {ui_url}")
        self.state = DevState(
            broker_url=broker_url,
            vault_addr=vault_addr,
            root_token=root_token,
            intake_token=intake_token,
            site_backend_token=site_backend_token,
            sandbox_url=sandbox.base_url,
            sandbox_keys={
                exchange: {label: key.credentials() for label, key in labels.items()}
                for exchange, labels in sandbox.keys.items()
            },
            robot_role_id=robot_creds.role_id,
            robot_secret_id=robot_creds.secret_id,
            check_settings=check_settings,
            ui_url=ui_url,
        )
        self._start_consumers(self.state)
        if on_ready is not None:
            on_ready()  # from here a stop signal is a clean stop, not an abandoned start-up
        # The state file is the sign that everything runs (tools and tests wait for it), so
        # it is written last. In-memory Vault and tokens die with us: leave no stale
        # credentials behind.
        write_state_file(self.state_file, self.state)
        self._stack.callback(self._remove_state_file)
        return self.state

    def _start_consumers(self, state: DevState) -> None:
        """The reference site worker and robot (keybroker_dev/consumers.py)."""
        self.say("Starting the reference consumers (site worker, robot) that verify keys")
        from broker.config import Settings
        from keybroker_dev.consumers import DISCOVER_EVERY, ReferenceConsumers

        consumers = ReferenceConsumers(
            broker_url=state.broker_url,
            vault_addr=state.vault_addr,
            intake_token=state.intake_token,
            site_backend_token=state.site_backend_token,
            robot_role_id=state.robot_role_id,
            robot_secret_id=state.robot_secret_id,
            settings=Settings(**state.check_settings, verify_interval=self.verify_interval),
            egress_ip=ROBOT_EGRESS_IP,
            say=self.say,
            # The robot "trades" (and notices a stopped key) at least once per verification.
            discover_every=min(DISCOVER_EVERY, self.verify_interval),
        ).start()
        self._own(consumers)

    def _start_vault(self) -> tuple[str, str]:
        if self.vault_mode == "binary":
            self.say("Starting Vault (`vault server -dev`)")
            vault = _BinaryVault(self.state_file.parent / "vault.log")
            self._own(vault)
            return vault.addr, vault.root_token
        self.say("Starting Vault (devvault, in memory)")
        try:
            from keybroker_dev.devvault.server import DevVaultServer
        except ImportError as exc:
            raise DevModeError(f"devvault is not available ({exc})") from None

        server = DevVaultServer(host="127.0.0.1", port=0).start()
        self._own(server)
        return str(server.addr), str(server.root_token)

    def _start_sandbox(self) -> Any:
        self.say("Starting the exchange sandbox")
        from keybroker_dev.sandbox import SandboxServer

        sandbox = SandboxServer(host="127.0.0.1", port=0, client_ip=ROBOT_EGRESS_IP).start()
        self._own(sandbox)
        return sandbox

    def _start_broker(
        self,
        *,
        vault_addr: str,
        role_id: str,
        secret_id: str,
        check_settings: dict[str, Any],
        mount: str,
        transit_mount: str,
    ) -> str:
        self.say("Starting the broker")
        from broker.config import load_settings

        try:
            from broker.api.server import start_in_thread
        except ImportError as exc:
            raise DevModeError(f"the broker service is not available ({exc})") from None

        settings = load_settings(
            vault_addr=vault_addr,
            vault_token=None,
            vault_role_id=role_id,
            vault_secret_id=secret_id,
            # The mounts the layout just created, whatever KEYBROKER_* the shell holds.
            kv_mount=mount,
            transit_mount=transit_mount,
            robot_vault_cidrs=[LOOPBACK_CIDR],
            site_vault_cidrs=[LOOPBACK_CIDR],
            api_docs=True,
            **check_settings,
            listen="127.0.0.1:0",
            audit_log=self.audit_log,
            verify_interval=self.verify_interval,
        )
        # Custody is the broker's default (`transit` for both roles) unless the shell sets
        # KEYBROKER_SITE_CUSTODY / KEYBROKER_ROBOT_CUSTODY: the terminal says which.
        self.custody = f"site {settings.site_custody}, robot {settings.robot_custody}"
        running = start_in_thread(settings, host="127.0.0.1", port=0, access_log=self.access_log)
        self._own(running)
        self._broker_settings = settings
        return str(running.url).rstrip("/")

    def _start_site(self, broker_url: str, intake_token: str) -> str:
        """The key page, with the broker's settings for the rules it shows."""
        self.say("Starting the key page")
        try:
            from broker.site.config import SiteSettings
            from broker.site.server import start_site_in_thread
        except ImportError as exc:
            raise DevModeError(f"the key page is not available ({exc})") from None

        site = SiteSettings(broker_url=broker_url, intake_token=SecretStr(intake_token))
        running = start_site_in_thread(site, self._broker_settings, host="127.0.0.1", port=0)
        self._own(running)
        return str(running.url).rstrip("/")

    @property
    def audit_log(self) -> Path:
        return self.state_file.parent / "audit.log"

    def _remove_state_file(self) -> None:
        with suppress(FileNotFoundError):
            self.state_file.unlink()


def dev_check_settings(exchange_urls: dict[str, str]) -> dict[str, Any]:
    """The dev broker's settings that decide a key check (module docstring), as JSON."""
    return {
        "exchanges": sorted(exchange_urls),
        "exchange_urls": exchange_urls,
        "robot_exchange_egress_ips": [ROBOT_EGRESS_IP],
        "site_exchange_egress_ips": [ROBOT_EGRESS_IP],
        # The sandbox sees the broker at that egress too, so a signed call that succeeds
        # proves a whitelist the exchange will not list (Binance).
        "broker_egress_ip": ROBOT_EGRESS_IP,
        "accept_unverifiable": sorted(ACCEPT_UNVERIFIABLE),
        "allow_futures": sorted(ALLOW_FUTURES),
    }


# --- `keybroker dev` ---------------------------------------------------------------------


def next_steps(state_file: Path) -> str:
    """What to try first; every secret is read from the state file, none is printed."""
    s = str(state_file)
    return f"""
keybroker dev is running. Connection details, tokens and sandbox keys: {s} (mode 0600).

Open the key page in a browser: $(jq -r .ui_url {s})/accounts/alice

Or try the API (needs curl and jq):

  S={s}
  # submit the sandbox's read-only Binance key as alice's site key
  jq '.sandbox_keys.binance.read_only + {{name: "alice main"}}' $S |
    curl -s -X PUT "$(jq -r .broker_url $S)/v1/accounts/alice/keys/binance/site" \\
      -H "Authorization: Bearer $(jq -r .intake_token $S)" \\
      -H 'Content-Type: application/json' -d @- | jq .
  # a key that can withdraw is refused (422, reason withdraw_enabled)
  jq '.sandbox_keys.binance.withdraw_enabled + {{name: "risky"}}' $S |
    curl -s -X PUT "$(jq -r .broker_url $S)/v1/accounts/alice/keys/binance/site" \\
      -H "Authorization: Bearer $(jq -r .intake_token $S)" \\
      -H 'Content-Type: application/json' -d @- | jq .
  # a short-lived site token, then the site key read straight from Vault
  TOKEN=$(curl -s -X POST "$(jq -r .broker_url $S)/v1/site-tokens" \\
      -H "Authorization: Bearer $(jq -r .site_backend_token $S)" \\
      -H 'Content-Type: application/json' -d '{{}}' | jq -r .token)
  curl -s -H "X-Vault-Token: $TOKEN" \\
      "$(jq -r .vault_addr $S)/v1/exchange-keys/data/site/alice/binance" | jq .data.metadata

Services use broker/client.py (docs/client.md). Press Ctrl-C to stop everything.
"""


class _Interrupted(BaseException):  # BaseException: no `except Exception` swallows it
    """SIGINT/SIGTERM arrived while the stack was still starting."""


def run(state_file: Path, vault_mode: str, verify_interval: float = DEV_VERIFY_INTERVAL) -> int:
    """Start everything, print what to do next, and run until SIGINT or SIGTERM.

    Exit 0 after a clean stop, 2 when dev mode cannot start as asked (e.g. no `vault`
    binary), 1 when a part failed to start, 130 when interrupted during start-up.
    """
    say: Say = lambda line: print(line, flush=True)  # noqa: E731
    stop = threading.Event()
    ready = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if not ready.is_set():  # abandon the start-up; DevStack.start stops what runs
            raise _Interrupted

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    stack: DevStack | None = None
    try:
        stack = DevStack(
            Path(state_file), vault_mode, say, access_log=say, verify_interval=verify_interval
        )
        stack.start(on_ready=ready.set)
        say(f"Ready in {time.monotonic() - started:.1f}s.")
        say(next_steps(Path(state_file)))
        while not stop.wait(0.5):
            pass
        say("Stopping...")
        return 0
    except _Interrupted:
        say("Interrupted during start-up.")
        return 130
    except DevModeError as exc:
        print(f"keybroker dev: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:
        # Our parts' errors carry no secrets (hvac/requests name the URL, not the token).
        print(f"keybroker dev: start-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        ready.set()  # a late signal must not raise inside the clean-up below
        if stack is not None:
            stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stop.is_set():
            say("Stopped.")
