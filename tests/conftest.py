"""Shared fixtures live in tests/fixtures/, one module per area (owned with that area)."""

pytest_plugins = [
    "tests.fixtures.vault",
    "tests.fixtures.exchange",
    "tests.fixtures.broker",
]
