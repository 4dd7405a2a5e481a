"""ACL policy store and the per-policy-set cache of compiled ACLs.

Semantics (docs/facts/vault.md §1.8, DOC api-docs/system/policies.mdx): names are
lower-cased and trimmed; `root` cannot be changed or deleted, `default` cannot be
deleted; a policy name that does not exist acts as an empty policy; policies are
re-read on every request, so any write or delete invalidates every compiled ACL.
The ACL itself is always `policies.acl.ACL`: devvault never evaluates rules itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from keybroker_dev.devvault.errors import bad_request
from policies.acl import ACL
from policies.hcl import PolicyParseError, parse_policy

# CODE policy_store.go defaultPolicy (core paths; docs/facts/vault.md §1.8).
DEFAULT_POLICY = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
path "sys/tools/random" {
    capabilities = ["update"]
}
path "sys/tools/random/*" {
    capabilities = ["update"]
}
"""

# CODE policy_store.go immutablePolicies / nonAssignablePolicies.
IMMUTABLE = frozenset({"root", "response-wrapping", "control-group"})
NON_ASSIGNABLE = frozenset({"response-wrapping", "control-group"})


def normalize_name(name: str) -> str:
    return name.strip().lower()


class PolicyStore:
    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._parsed: dict[str, Any] = {}
        self._acls: dict[tuple[str, ...], ACL] = {}
        self._lock = threading.Lock()
        self.put("default", DEFAULT_POLICY)

    # -- policies ------------------------------------------------------------------
    def names(self) -> list[str]:
        """As `LIST sys/policies/acl` shows them: sorted, with `root`."""
        return sorted({*self._texts, "root"})

    def get(self, name: str) -> str | None:
        return self._texts.get(normalize_name(name))

    def exists(self, name: str) -> bool:
        name = normalize_name(name)
        return name == "root" or name in self._texts

    def put(self, name: str, text: str) -> None:
        name = normalize_name(name)
        if not name:
            raise bad_request("policy name must be provided")
        if name in IMMUTABLE:
            raise bad_request(f"cannot update {name} policy")
        try:
            parsed = parse_policy(text, name=name)
        except PolicyParseError as exc:
            raise bad_request(f"failed to parse policy: {exc}") from exc
        with self._lock:
            self._texts[name] = text
            self._parsed[name] = parsed
            self._acls.clear()

    def delete(self, name: str) -> None:
        name = normalize_name(name)
        if name == "default":
            raise bad_request("cannot delete default policy")
        if name in IMMUTABLE:
            raise bad_request(f"cannot delete {name} policy")
        with self._lock:
            self._texts.pop(name, None)
            self._parsed.pop(name, None)
            self._acls.clear()

    # -- compiled ACLs -------------------------------------------------------------
    def acl(self, policy_names: Iterable[str]) -> ACL:
        """The compiled ACL of a token's policy set; a missing policy is empty."""
        key = tuple(sorted({normalize_name(n) for n in policy_names}))
        acl = self._acls.get(key)
        if acl is None:
            with self._lock:
                parsed = [self._parsed[n] for n in key if n in self._parsed]
                acl = ACL(parsed)
                self._acls[key] = acl
        return acl
