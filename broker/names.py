"""Names and defaults of the Vault layout that every part of keybroker shares.

docs/contracts.md §2 (layout) and §7 (settings). This is their one home: the layout,
the settings, the identifier checks, the runtime client, the lint rules, the policy
pack and the Pulumi program import them from here. Standard library only, so the
client-only install can import it (docs/client.md).
"""

from __future__ import annotations

from typing import Literal

# The two kinds of key: what the web site reads, and what the trading robot reads.
Role = Literal["site", "robot"]
ROLES: tuple[Role, ...] = ("site", "robot")

# The KV v2 mount every key lives under unless KEYBROKER_KV_MOUNT says otherwise.
DEFAULT_MOUNT = "exchange-keys"

# What KV v2 accepts in a key's custom_metadata (docs/facts/vault.md §3): at most 64
# keys, keys of 1-128 characters, values of 1-512 bytes.
CUSTOM_METADATA_MAX_KEYS = 64
CUSTOM_METADATA_MAX_KEY_LENGTH = 128
CUSTOM_METADATA_MAX_VALUE_BYTES = 512

# The site token role (KEYBROKER_SITE_TOKEN_ROLE) and the AppRole auth method's path.
DEFAULT_SITE_TOKEN_ROLE = "keybroker-site"
APPROLE_MOUNT = "approle"

# The Transit mount that holds the signing keys under `transit` custody
# (KEYBROKER_TRANSIT_MOUNT; docs/custody.md).
DEFAULT_TRANSIT_MOUNT = "exchange-signing"

# Site tokens: 5 minutes unless asked otherwise, never more than 15 minutes
# (KEYBROKER_SITE_TOKEN_TTL / KEYBROKER_SITE_TOKEN_MAX_TTL).
SITE_TOKEN_TTL_S = 300.0
SITE_TOKEN_MAX_TTL_S = 900.0

# Key health (docs/key-health.md): consumers re-verify each key this often by default
# (KEYBROKER_VERIFY_INTERVAL on the broker; `interval` of the client's verifier); a key
# with no verification in twice this time is `unverified`.
VERIFY_INTERVAL_S = 6 * 3600.0
# Statuses that make a consumer stop using a key and wait for a new one: a status alone
# stops on any detail, `status:right` on that right only (KEYBROKER_HEALTH_STOP_ON).
HEALTH_STOP_ON = ("rights_changed:withdraw", "rights_changed:transfer", "rights_changed:trade")

# Consumer tokens bound to one account carry it in their Vault token metadata under this
# key: site tokens get it from `POST /v1/site-tokens {"account"}` (token `meta`), robot
# tokens from their AppRole secret ID's `metadata` (docs/key-health.md "Who may report").
ACCOUNT_META_KEY = "account"
# Consumers whose verification reports must come from a token bound to the key's account
# (KEYBROKER_ACCOUNT_BOUND_REPORTS); the robot's AppRole spans accounts unless listed.
ACCOUNT_BOUND_REPORTS: tuple[Role, ...] = ("site",)
