"""docs/contracts.md names everything a user can rely on, and the README's proofs exist.

Each check reads the code, not a list restated here: a setting, reason code, error code,
route, command or option added without a line in the contract fails the suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from broker.api.docs import install_api_docs
from broker.api.errors import _HTTP_CODES
from broker.api.health_routes import health_router
from broker.api.routes import open_router, router
from broker.cli import app
from broker.config import Settings, env_name
from broker.reasons import ReasonCode
from broker.site.config import SiteSettings

REPO = Path(__file__).resolve().parents[1]
CONTRACT = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(number: int) -> str:
    """The text of `## N. ...` up to the next `## ` heading."""
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", CONTRACT, re.MULTILINE | re.DOTALL)
    assert match, f"docs/contracts.md has no section {number}"
    return match.group(0)


def named(name: str, text: str) -> bool:
    """`name` appears as a code span of its own (`NAME`, or `NAME` followed by ` (`/`=`)."""
    return re.search(rf"`{re.escape(name)}(?:`|[ =(])", text) is not None


def _source(*parts: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for part in parts for p in REPO.glob(part))


# --- settings -----------------------------------------------------------------------------


def setting_names() -> list[str]:
    broker = [env_name(f).removeprefix("KEYBROKER_") for f in Settings.model_fields]
    prefix = str(SiteSettings.model_config.get("env_prefix", "")).removeprefix("KEYBROKER_")
    site = [f"{prefix}{f.upper()}" for f in SiteSettings.model_fields]
    return broker + site


@pytest.mark.parametrize("name", setting_names())
def test_every_setting_is_in_the_contract(name: str) -> None:
    assert named(name, section(7)), f"setting KEYBROKER_{name} is not in docs/contracts.md §7"


def environment_variables() -> list[str]:
    """Every `KEYBROKER_X` literal the product and dev tools read (beyond Settings)."""
    code = _source("broker/**/*.py", "devtools/keybroker_dev/**/*.py")
    return sorted(set(re.findall(r"\bKEYBROKER_[A-Z][A-Z0-9_]*[A-Z0-9]\b", code)))


@pytest.mark.parametrize("variable", environment_variables())
def test_every_environment_variable_is_in_the_contract(variable: str) -> None:
    short = variable.removeprefix("KEYBROKER_")
    assert named(variable, CONTRACT) or named(short, CONTRACT), (
        f"{variable} is read by the code but not named in docs/contracts.md"
    )


# --- reason and error codes ---------------------------------------------------------------


@pytest.mark.parametrize("code", [c.value for c in ReasonCode])
def test_every_reason_code_is_in_the_contract(code: str) -> None:
    assert named(code, section(4)), f"reason code {code} is not in docs/contracts.md §4"


def error_codes() -> list[str]:
    code = _source("broker/api/*.py")
    raised = re.findall(r"ApiError\(\s*\d{3},\s*\"([a-z_]+)\"", code)
    retryable = re.findall(r"\"(exchange_unavailable|rate_limited)\"", code)
    return sorted(set(raised) | set(retryable) | set(_HTTP_CODES.values()))


def test_error_codes_are_found() -> None:
    # Guards the regular expression above: it must see the codes raised in several forms.
    assert {"invalid_request", "server_busy", "version_mismatch", "rate_limited"} <= set(
        error_codes()
    )


@pytest.mark.parametrize("code", error_codes())
def test_every_error_code_is_in_the_contract(code: str) -> None:
    assert named(code, section(3)), f"error code {code} is not in docs/contracts.md §3"


# --- HTTP endpoints -----------------------------------------------------------------------


def endpoints() -> list[str]:
    from fastapi import FastAPI

    # The docs pages as `KEYBROKER_API_DOCS` adds them (the test extra holds their assets).
    docs_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_api_docs(docs_app)
    found = []
    for api_router in (router, health_router, open_router, docs_app.router):
        for route in api_router.routes:
            path = getattr(route, "path", "")
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    found.append(f"{method} {path}")
    return sorted(set(found))


def test_endpoints_are_found() -> None:
    assert {"GET /v1/keys", "GET /readyz", "GET /docs", "GET /redoc"} <= set(endpoints())
    assert "GET /openapi.json" in section(3)  # FastAPI's own route, not in the routers


@pytest.mark.parametrize("endpoint", endpoints())
def test_every_endpoint_is_in_the_contract(endpoint: str) -> None:
    assert f"`{endpoint}" in section(3), f"{endpoint} is not in docs/contracts.md §3"


def page_endpoints() -> list[str]:
    from broker.site.app import create_site_app

    page = create_site_app(SiteSettings(intake_token="unused"), Settings())
    found = []
    for route in page.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append(f"{method} {route.path}")
    return sorted(found)


@pytest.mark.parametrize("endpoint", page_endpoints())
def test_every_key_page_endpoint_is_in_the_contract(endpoint: str) -> None:
    method, path = endpoint.split(" ", 1)
    rows = [line for line in section(8).splitlines() if f"{path}`" in line or f"{path}[" in line]
    assert any(method in row for row in rows), f"{endpoint} is not in docs/contracts.md §8"


# --- command line -------------------------------------------------------------------------


def commands() -> list[tuple[str, list[str]]]:
    """(command path, its long options) for every leaf command of `keybroker`."""
    found: list[tuple[str, list[str]]] = []

    # Typer ships its own copy of click: inspect by attribute, not by class.
    def walk(command: Any, path: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            return
        options = [
            opt
            for param in command.params
            if param.param_type_name == "option"
            for opt in param.opts
            if opt.startswith("--") and opt != "--help"
        ]
        found.append((path, options))

    walk(typer.main.get_command(app), "keybroker")
    return found


def command_entry(path: str) -> str:
    """The §5 bullet that documents `path` (it starts with that command in backticks)."""
    bullets = re.split(r"\n(?=- `)", section(5))
    for bullet in bullets:
        if re.match(rf"- `{re.escape(path)}(?=[ `])", bullet):
            return bullet
    return ""


@pytest.mark.parametrize(("path", "options"), commands(), ids=lambda v: str(v))
def test_every_command_and_option_is_in_the_contract(path: str, options: list[str]) -> None:
    entry = command_entry(path)
    assert entry, f"`{path}` has no entry in docs/contracts.md §5"
    missing = [opt for opt in options if not re.search(rf"{re.escape(opt)}(?![\w-])", entry)]
    assert not missing, f"`{path}`: options {missing} are not in its docs/contracts.md §5 entry"


def test_every_command_states_its_exit_codes() -> None:
    quiet = [path for path, _ in commands() if "exit" not in command_entry(path).lower()]
    assert not quiet, f"no exit codes in docs/contracts.md §5 for {quiet}"


def test_global_options_are_in_the_contract() -> None:
    root = typer.main.get_command(app)
    for param in root.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"keybroker {opt}" in CONTRACT, opt


# --- the README's proofs ------------------------------------------------------------------


def readme_test_files() -> list[str]:
    """`tests/dir/test_x.py` in the README, and a bare `test_y.py` after it on the same line
    (a table cell's shorthand for the same directory)."""
    found = []
    for line in README.splitlines():
        directory = ""
        for span in re.findall(r"`([^`]+)`", line):
            if re.fullmatch(r"tests/[\w/]+\.py", span):
                directory = span.rsplit("/", 1)[0] + "/"
                found.append(span)
            elif re.fullmatch(r"tests/[\w/]+", span):
                directory = span.rstrip("/") + "/"
            elif re.fullmatch(r"test_\w+\.py", span):
                assert directory, f"README.md names {span} without a directory: {line!r}"
                found.append(directory + span)
    return sorted(set(found))


def test_the_readme_names_test_files() -> None:
    assert len(readme_test_files()) > 20


@pytest.mark.parametrize("path", readme_test_files())
def test_every_test_file_the_readme_names_exists(path: str) -> None:
    assert (REPO / path).is_file(), f"README.md names {path}, which does not exist"


def readme_test_dirs() -> list[str]:
    return sorted(set(re.findall(r"`(tests/[\w/]+?)/?`", README)) - set(readme_test_files()))


@pytest.mark.parametrize("path", readme_test_dirs())
def test_every_test_directory_the_readme_names_exists(path: str) -> None:
    assert (REPO / path).is_dir(), f"README.md names {path}, which does not exist"
