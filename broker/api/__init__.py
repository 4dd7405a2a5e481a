"""The broker's HTTP edge (docs/contracts.md §3): thin routes over broker/intake.py."""

from broker.api.app import create_app

__all__ = ["create_app"]
