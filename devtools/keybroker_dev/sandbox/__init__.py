"""Exchange sandbox: each exchange's self-inspection API on loopback, with that exchange's
own request signing verified and its own response shapes and error codes
(docs/facts/exchanges.md). Used by tests, benches and `keybroker dev`/`keybroker sandbox`.
"""

from keybroker_dev.sandbox.keys import SandboxKey, SandboxKeyError
from keybroker_dev.sandbox.server import SandboxServer, run_forever
from keybroker_dev.sandbox.state import Fault, SandboxStateError

__all__ = [
    "Fault",
    "SandboxKey",
    "SandboxKeyError",
    "SandboxServer",
    "SandboxStateError",
    "run_forever",
]
