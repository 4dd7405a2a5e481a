"""Exchange key inspection: one adapter per exchange over ccxt's implicit API.

Public surface: `Credentials` (base), `KeyChecker` (checker), `evaluate` (broker.rules).
`KeyChecker` is imported lazily because importing ccxt takes about a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.exchanges.base import Credentials

if TYPE_CHECKING:
    from broker.exchanges.checker import KeyChecker

__all__ = ["Credentials", "KeyChecker"]


def __getattr__(name: str) -> Any:
    if name == "KeyChecker":
        from broker.exchanges.checker import KeyChecker

        return KeyChecker
    raise AttributeError(name)
