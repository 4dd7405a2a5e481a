"""Token store: service and batch tokens, token roles, creation rules, renewal, revocation.

Follows DOC api-docs/auth/token.mdx, DOC concepts/tokens.mdx and CODE token_store.go
`handleCreateCommon` as summarised in docs/facts/vault.md §4.3:
- child policies must be a subset of the parent's unless the caller is root/sudo or a
  role's allowed/disallowed policies decide; `default` is added unless opted out;
  `root` swallows every other policy;
- batch tokens: no accessor, not renewable, cannot create tokens, cannot carry
  `explicit_max_ttl`/`num_uses`/`period`, cannot be revoked by hand, stop working when
  a (non-orphan) parent is revoked;
- a parent with `num_uses` cannot create children;
- TTL defaults to the system default (768h), is capped by the explicit max TTL (with a
  warning) and by the system max (768h); root-policy tokens may have no TTL.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keybroker_dev.devvault import ids
from keybroker_dev.devvault.cidrs import Network, cidr_strings, parse_cidrs
from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.durations import go_duration, parse_duration
from keybroker_dev.devvault.errors import VaultError, bad_request
from keybroker_dev.devvault.leases import LeaseConfig
from keybroker_dev.devvault.params import as_bool, as_int, as_str, as_str_list, as_str_map
from keybroker_dev.devvault.policystore import NON_ASSIGNABLE, normalize_name

ROLE_TOKEN_TYPES = ("service", "batch", "default", "default-service", "default-batch")


_DISPLAY_SANITIZE = re.compile(r"[^a-zA-Z0-9-]")


def _calculate_ttl(
    ttl: float, period: float, explicit_max: float, leases: LeaseConfig, warnings: list[str]
) -> float:
    """CODE sdk/framework CalculateTTL for token creation: the period, else the TTL or the
    mount's default; capped by the explicit max TTL or the mount's max lease TTL (the
    server's unless `auth/token/` was tuned), with a warning (leases.py)."""
    if period:
        if explicit_max and period > explicit_max:
            warnings.append(
                f'Period of "{go_duration(period)}" exceeded the effective max_ttl of '
                f'"{go_duration(explicit_max)}"; Period value is capped accordingly'
            )
            return explicit_max
        return period
    ttl = ttl or leases.default_ttl
    max_ttl = leases.max_ttl
    if explicit_max and explicit_max < max_ttl:
        max_ttl = explicit_max
    if ttl > max_ttl:
        warnings.append(
            f'TTL of "{go_duration(ttl)}" exceeded the effective max_ttl of '
            f'"{go_duration(max_ttl)}"; TTL value is capped accordingly'
        )
        ttl = max_ttl
    return ttl


def sanitize_policies(names: list[str], add_default: bool) -> list[str]:
    """CODE policyutil.SanitizePolicies: trim, lower-case, dedupe, sort; root alone."""
    out = {normalize_name(n) for n in names if n.strip()}
    if add_default:
        out.add("default")
    if "root" in out:
        return ["root"]
    return sorted(out)


@dataclass
class TokenEntry:
    id: str = field(repr=False)  # a credential: never in reprs or logs
    accessor: str  # "" for batch tokens
    policies: list[str]
    type: str  # "service" | "batch"
    path: str
    creation_time: float
    creation_ttl: float  # seconds, 0 = never expires
    parent: str = ""  # "" = orphan
    display_name: str = "token"
    meta: dict[str, str] | None = None
    renewable: bool = True
    explicit_max_ttl: float = 0.0
    max_ttl: float = 0.0  # renewal cap set by an auth method's token_max_ttl
    num_uses: int = 0
    period: float = 0.0  # periodic token: every renewal resets the TTL to this
    bound_cidrs: tuple[Network, ...] = ()
    role: str = ""
    ttl: float = 0.0  # current TTL from last_renewal
    last_renewal: float | None = None
    children: set[str] = field(default_factory=set)
    # The issuing mount's lease TTLs (None: the token store's), read again at renewal.
    leases: LeaseConfig | None = None

    @property
    def orphan(self) -> bool:
        return not self.parent

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def expires_at(self) -> float | None:
        if self.ttl <= 0:
            return None
        return (self.last_renewal or self.creation_time) + self.ttl

    def remaining(self, now: float) -> int:
        exp = self.expires_at()
        return 0 if exp is None else max(0, int(exp - now))


@dataclass
class TokenRole:
    name: str
    allowed_policies: list[str] = field(default_factory=list)
    disallowed_policies: list[str] = field(default_factory=list)
    allowed_policies_glob: list[str] = field(default_factory=list)
    disallowed_policies_glob: list[str] = field(default_factory=list)
    orphan: bool = False
    renewable: bool = True
    path_suffix: str = ""
    allowed_entity_aliases: list[str] = field(default_factory=list)
    token_bound_cidrs: tuple[Network, ...] = ()
    token_explicit_max_ttl: float = 0.0
    token_no_default_policy: bool = False
    token_num_uses: int = 0
    token_period: float = 0.0
    token_type: str = "default-service"

    def to_dict(self) -> dict[str, Any]:
        """As `GET auth/token/roles/:name` returns it (legacy aliases included)."""
        return {
            "name": self.name,
            "allowed_policies": list(self.allowed_policies),
            "disallowed_policies": list(self.disallowed_policies),
            "allowed_policies_glob": list(self.allowed_policies_glob),
            "disallowed_policies_glob": list(self.disallowed_policies_glob),
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "allowed_entity_aliases": list(self.allowed_entity_aliases),
            "token_bound_cidrs": cidr_strings(self.token_bound_cidrs),
            "token_explicit_max_ttl": int(self.token_explicit_max_ttl),
            "explicit_max_ttl": int(self.token_explicit_max_ttl),
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": int(self.token_period),
            "period": int(self.token_period),
            "token_type": self.token_type,
        }

    def update(self, data: Mapping[str, Any], *, strict_batch_roles: bool = True) -> None:
        """Apply a `POST auth/token/roles/:name` body; absent fields keep their value.

        `strict_batch_roles=False` accepts a batch role with an explicit max TTL, which
        Vault refuses (see below); that TTL is then ignored, as Vault ignores a role's
        explicit max TTL for batch tokens anyway."""
        for key in (
            "allowed_policies",
            "disallowed_policies",
            "allowed_policies_glob",
            "disallowed_policies_glob",
            "allowed_entity_aliases",
        ):
            values = as_str_list(data, key)
            if values is not None:
                if key.endswith("policies"):
                    values = sanitize_policies(values, add_default=False)
                setattr(self, key, values)
        self.orphan = as_bool(data, "orphan", self.orphan)
        self.renewable = as_bool(data, "renewable", self.renewable)
        self.path_suffix = as_str(data, "path_suffix", self.path_suffix)
        if "..." in self.path_suffix:
            raise bad_request("path_suffix cannot contain '..'")
        # Legacy names (bound_cidrs, explicit_max_ttl, period) are accepted as aliases.
        for new, old in (("token_bound_cidrs", "bound_cidrs"),):
            raw = data.get(new, data.get(old))
            if raw is not None:
                self.token_bound_cidrs = parse_cidrs(raw, new)
        for new, old in (
            ("token_explicit_max_ttl", "explicit_max_ttl"),
            ("token_period", "period"),
        ):
            raw = data.get(new, data.get(old))
            if raw is not None:
                setattr(self, new, parse_duration(raw, new))
        self.token_no_default_policy = as_bool(
            data, "token_no_default_policy", self.token_no_default_policy
        )
        self.token_num_uses = as_int(data, "token_num_uses", self.token_num_uses)
        if self.token_num_uses < 0:
            raise bad_request("token_num_uses cannot be negative")
        token_type = as_str(data, "token_type", self.token_type) or "default-service"
        if token_type == "default":
            token_type = "default-service"
        if token_type not in ROLE_TOKEN_TYPES:
            raise bad_request(f"invalid 'token_type' value {token_type!r}")
        self.token_type = token_type
        # CODE token_store.go tokenStoreRoleCreateUpdate: what a batch role cannot be.
        if token_type == "batch":
            for broken, what in (
                (not self.orphan, "non-orphan tokens"),
                (self.token_period, "periodic tokens"),
                (self.renewable, "renewable tokens"),
                (
                    self.token_explicit_max_ttl and strict_batch_roles,
                    "tokens with an explicit max TTL",
                ),
            ):
                if broken:
                    raise bad_request(
                        f"'token_type' cannot be 'batch' when role is set to generate {what}"
                    )


class TokenStore:
    def __init__(self, clock: Clock, *, strict_batch_roles: bool = True) -> None:
        self.clock = clock
        self.strict_batch_roles = strict_batch_roles
        # Called with each revoked/expired token id (the core drops its cubbyhole).
        self.on_forget: list[Callable[[str], None]] = []
        self._tokens: dict[str, TokenEntry] = {}
        self._accessors: dict[str, str] = {}
        self.roles: dict[str, TokenRole] = {}
        # The lease TTLs of the `auth/token/` mount (shared with its MountEntry).
        self.leases = LeaseConfig()

    # -- lookups -------------------------------------------------------------------
    def lookup(self, token_id: str) -> TokenEntry | None:
        """The live token with this id; expired or orphaned-batch tokens are gone."""
        entry = self._tokens.get(token_id)
        if entry is None:
            return None
        exp = entry.expires_at()
        if exp is not None and self.clock.now() >= exp:
            self.revoke_tree(entry)
            return None
        # DOC concepts/tokens.mdx: children are revoked with (or when) their parent expires
        # or is revoked; a batch child "stops working". The parent may have expired
        # without anyone looking it up yet, so check it here.
        if entry.parent and self.lookup(entry.parent) is None:
            self.revoke_tree(entry)
            return None
        return entry

    def by_accessor(self, accessor: str) -> TokenEntry | None:
        token_id = self._accessors.get(accessor)
        return self.lookup(token_id) if token_id else None

    # -- creation ------------------------------------------------------------------
    def create_root(self, token_id: str | None = None) -> TokenEntry:
        entry = TokenEntry(
            id=token_id or ids.service_token(),
            accessor=ids.accessor(),
            policies=["root"],
            type="service",
            path="auth/token/root",
            creation_time=self.clock.now(),
            creation_ttl=0,
            display_name="root",
        )
        self._store(entry)
        return entry

    def create(
        self,
        parent: TokenEntry,
        data: Mapping[str, Any],
        *,
        role_name: str | None,
        orphan_endpoint: bool,
        privileged: bool,
        path: str,
    ) -> tuple[TokenEntry, list[str]]:
        """`auth/token/create[-orphan|/:role]`; `privileged` = root or sudo on the path.

        Follows CODE token_store.go `handleCreateCommon` step by step (checks in the same
        order, same messages)."""
        warnings: list[str] = []
        role: TokenRole | None = None
        if role_name is not None:
            role = self.roles.get(role_name.lower())
            if role is None:
                raise bad_request("unknown role " + role_name)
        if parent.type == "batch":
            raise bad_request("batch tokens cannot create more tokens")
        if parent.num_uses != 0:  # -1: on its last use right now
            raise bad_request("restricted use token cannot generate child tokens")

        # Token type: a role's service/batch forces it; default-batch only sets the default.
        renewable = as_bool(data, "renewable", True)
        token_type = as_str(data, "type", "")
        if role is not None:
            if role.token_type in ("service", "batch"):
                token_type = role.token_type
            elif role.token_type == "default-batch" and not token_type:
                token_type = "batch"
        if token_type in ("", "service"):
            token_type = "service"
        elif token_type == "batch":
            for key in ("explicit_max_ttl", "num_uses", "period"):
                if key == "num_uses":
                    bad = as_int(data, key, 0) != 0
                else:
                    bad = parse_duration(data.get(key), key) != 0
                if bad:
                    raise bad_request(f'batch tokens cannot have "{key}" set')
            renewable = False
        else:
            raise bad_request("invalid 'token_type' value")

        num_uses = as_int(data, "num_uses", 0)
        if num_uses < 0:
            raise bad_request("number of uses cannot be negative")
        token_path = path
        if role is not None:
            if not role.renewable:
                renewable = False
            # 0 means unlimited, so any role limit is stricter than none.
            if role.token_num_uses and (num_uses == 0 or role.token_num_uses < num_uses):
                num_uses = role.token_num_uses
            if role.path_suffix:
                token_path = f"{path}/{role.path_suffix}"

        display_name = "token"
        if as_str(data, "display_name", ""):
            display_name = _DISPLAY_SANITIZE.sub("-", "token-" + as_str(data, "display_name"))
            display_name = display_name.removesuffix("-")
        token_id = as_str(data, "id", "")
        if token_id and not privileged:
            raise bad_request("root or sudo privileges required to specify token id")

        policies = self._child_policies(parent, data, role, privileged)
        for name in policies:
            if name in NON_ASSIGNABLE:
                raise bad_request(f"cannot assign policy {name!r}")
        if "root" in policies:
            if not parent.is_root:
                raise bad_request("root tokens may not be created without parent token being root")
            if token_type == "batch":
                raise bad_request("batch tokens cannot be root tokens")

        orphan = orphan_endpoint
        bound_cidrs: tuple[Network, ...] = ()
        if role is not None:
            orphan = orphan or role.orphan
            bound_cidrs = role.token_bound_cidrs
        elif as_bool(data, "no_parent", False):
            if not privileged:
                raise bad_request("root or sudo privileges required to create orphan token")
            orphan = True
        if not orphan and role is None:
            bound_cidrs = parent.bound_cidrs  # children inherit the parent's CIDR binding

        explicit_max = parse_duration(data.get("explicit_max_ttl"), "explicit_max_ttl")
        period = parse_duration(data.get("period"), "period")
        if period and not privileged:
            raise bad_request("root or sudo privileges required to create periodic token")
        ttl = parse_duration(data.get("ttl") or data.get("lease"), "ttl")
        # The role's explicit max TTL and period apply to service tokens only: Vault
        # skips them for batch tokens (`role != nil && te.Type != TokenTypeBatch`).
        if role is not None and token_type != "batch":
            if role.token_explicit_max_ttl:
                if explicit_max:
                    explicit_max = min(explicit_max, role.token_explicit_max_ttl)
                    warnings.append(
                        "Explicit max TTL specified both during creation call and in role; "
                        f"using the lesser value of {int(explicit_max)} seconds"
                    )
                else:
                    explicit_max = role.token_explicit_max_ttl
            if role.token_period:
                if period:
                    period = min(period, role.token_period)
                    warnings.append(
                        "Period specified both during creation call and in role; "
                        f"using the lesser value of {int(period)} seconds"
                    )
                else:
                    period = role.token_period
        if period or ttl or "root" not in policies:
            ttl = _calculate_ttl(ttl, period, explicit_max, self.leases, warnings)
        if ttl == 0 and explicit_max:
            ttl = explicit_max  # root tokens are still bound by an explicit max TTL
        if ttl == 0:
            if parent.ttl:
                raise bad_request("expiring root tokens cannot create non-expiring root tokens")
            renewable = False
            bound_cidrs = ()

        if token_id and token_id in self._tokens:
            raise bad_request("token already exists")
        entry = TokenEntry(
            id=token_id or (ids.batch_token() if token_type == "batch" else ids.service_token()),
            accessor="" if token_type == "batch" else ids.accessor(),
            policies=policies,
            type=token_type,
            path=token_path,
            creation_time=self.clock.now(),
            creation_ttl=ttl,
            ttl=ttl,
            parent="" if orphan else parent.id,
            display_name=display_name,
            meta=as_str_map(data, "meta"),
            renewable=renewable,
            explicit_max_ttl=explicit_max,
            num_uses=num_uses,
            period=period,
            bound_cidrs=bound_cidrs,
            role=role.name if role else "",
        )
        self._store(entry)
        return entry, warnings

    def _child_policies(
        self,
        parent: TokenEntry,
        data: Mapping[str, Any],
        role: TokenRole | None,
        privileged: bool,
    ) -> list[str]:
        """The policy rules of `handleCreateCommon` (docs/facts/vault.md §4.3)."""
        requested = as_str_list(data, "policies") or []
        no_default = as_bool(data, "no_default_policy", False)
        add_default = False
        if role is not None and (
            role.allowed_policies
            or role.disallowed_policies
            or role.allowed_policies_glob
            or role.disallowed_policies_glob
        ):
            # A role with allowed/disallowed policies decides alone; parents do not count.
            local_default = (
                not no_default
                and not role.token_no_default_policy
                and not self._disallows(role, "default")
            )
            final = sanitize_policies(requested, local_default) if requested else []
            if role.allowed_policies or role.allowed_policies_glob:
                allowed = sanitize_policies(role.allowed_policies, local_default)
                if not final:
                    final = allowed
                else:
                    for p in final:
                        if p not in allowed and not any(
                            fnmatch.fnmatchcase(p, g) for g in role.allowed_policies_glob
                        ):
                            raise bad_request(
                                f"token policies ({final}) must be subset of the role's allowed "
                                f"policies ({allowed}) or glob policies "
                                f"({role.allowed_policies_glob})"
                            )
            elif not final:
                final = sanitize_policies(parent.policies, local_default)
            self._check_disallowed(role, final)
            wanted = final
        elif not requested:
            # Inherit the parent's policies; `default` only if the parent has it.
            wanted = sanitize_policies(parent.policies, add_default=False)
        elif not privileged:
            wanted = sanitize_policies(requested, add_default=False)
            if not set(wanted) <= set(sanitize_policies(parent.policies, add_default=False)):
                raise bad_request("child policies must be subset of parent")
            add_default = not no_default and "default" in parent.policies
        else:
            wanted = requested
            add_default = not no_default
        policies = sanitize_policies(wanted, add_default)
        if no_default:
            policies = [p for p in policies if p != "default"]
        return policies

    @staticmethod
    def _disallows(role: TokenRole, policy: str) -> bool:
        return policy in role.disallowed_policies or any(
            fnmatch.fnmatchcase(policy, g) for g in role.disallowed_policies_glob
        )

    def _check_disallowed(self, role: TokenRole, policies: list[str]) -> None:
        for p in policies:
            if self._disallows(role, p):
                raise bad_request(f"token policy {p!r} is disallowed by this role")

    def create_for_login(
        self,
        *,
        policies: list[str],
        path: str,
        display_name: str,
        meta: dict[str, str],
        ttl: float,
        max_ttl: float,
        explicit_max_ttl: float,
        num_uses: int,
        bound_cidrs: tuple[Network, ...],
        token_type: str,
        no_default_policy: bool,
        leases: LeaseConfig,
    ) -> TokenEntry:
        """A token issued by an auth method (AppRole): an orphan with the role's limits,
        within the lease TTLs of the auth method's mount (leases.py)."""
        ttl = ttl or leases.default_ttl
        for cap in (max_ttl, explicit_max_ttl, leases.max_ttl):
            if cap and ttl > cap:
                ttl = cap
        entry = TokenEntry(
            id=ids.batch_token() if token_type == "batch" else ids.service_token(),
            accessor="" if token_type == "batch" else ids.accessor(),
            policies=sanitize_policies(policies, add_default=not no_default_policy),
            type=token_type,
            path=path,
            creation_time=self.clock.now(),
            creation_ttl=ttl,
            ttl=ttl,
            display_name=display_name,
            meta=meta,
            renewable=token_type != "batch",
            explicit_max_ttl=explicit_max_ttl,
            max_ttl=max_ttl,
            num_uses=num_uses,
            bound_cidrs=bound_cidrs,
            leases=leases,
        )
        self._store(entry)
        return entry

    def _store(self, entry: TokenEntry) -> None:
        self._tokens[entry.id] = entry
        if entry.accessor:
            self._accessors[entry.accessor] = entry.id
        if entry.parent:
            parent = self._tokens.get(entry.parent)
            if parent is not None:
                parent.children.add(entry.id)

    # -- use, renew, revoke ----------------------------------------------------------
    def use(self, entry: TokenEntry) -> None:
        """Count one use (also for denied requests: CODE request_handling.go decrements
        "even in the case of an error"); the last use revokes the token."""
        if entry.num_uses <= 0:
            return
        entry.num_uses -= 1
        if entry.num_uses == 0:
            # Mark exhausted: -1 keeps it valid for the rest of this request only.
            entry.num_uses = -1

    def finish_use(self, entry: TokenEntry) -> None:
        if entry.num_uses == -1:
            self.revoke_tree(entry)

    def renew(self, entry: TokenEntry, increment: float) -> list[str]:
        """DOC auth/token renew-self: new TTL = increment (or the creation TTL), capped by
        the explicit max TTL, the token's max TTL and the system max, from creation."""
        if entry.type == "batch":
            raise bad_request("batch tokens cannot be renewed")  # CODE handleRenew
        if not entry.renewable:
            raise bad_request("lease is not renewable")
        now = self.clock.now()
        warnings: list[str] = []
        ttl = entry.period or increment or entry.creation_ttl
        caps = (
            (entry.explicit_max_ttl,)
            if entry.period
            else (entry.explicit_max_ttl, entry.max_ttl, (entry.leases or self.leases).max_ttl)
        )
        for cap in caps:
            if cap:
                left = entry.creation_time + cap - now
                if ttl > left:
                    ttl = max(0.0, left)
                    warnings.append("TTL of the renewed token was capped by its maximum TTL")
        entry.last_renewal = now
        entry.ttl = ttl
        return warnings

    def revoke_tree(self, entry: TokenEntry) -> None:
        """DOC auth/token revoke: the token and all its children."""
        for child_id in list(entry.children):
            child = self._tokens.get(child_id)
            if child is not None:
                self.revoke_tree(child)
        self._forget(entry)

    def revoke_orphan(self, entry: TokenEntry) -> None:
        """DOC auth/token revoke-orphan: children become orphans."""
        for child_id in list(entry.children):
            child = self._tokens.get(child_id)
            if child is not None:
                child.parent = ""
        entry.children.clear()
        self._forget(entry)

    def _forget(self, entry: TokenEntry) -> None:
        self._tokens.pop(entry.id, None)
        for hook in self.on_forget:
            hook(entry.id)
        if entry.accessor:
            self._accessors.pop(entry.accessor, None)
        if entry.parent:
            parent = self._tokens.get(entry.parent)
            if parent is not None:
                parent.children.discard(entry.id)

    def purge_expired(self) -> None:
        for token_id in list(self._tokens):
            self.lookup(token_id)

    # -- views ---------------------------------------------------------------------
    def lookup_data(self, entry: TokenEntry) -> dict[str, Any]:
        """DOC auth/token lookup-self response `data`."""
        now = self.clock.now()
        exp = entry.expires_at()
        data: dict[str, Any] = {
            "accessor": entry.accessor,
            "creation_time": int(entry.creation_time),
            "creation_ttl": int(entry.creation_ttl),
            "display_name": entry.display_name,
            "entity_id": "",
            "expire_time": rfc3339(exp) if exp is not None else None,
            "explicit_max_ttl": int(entry.explicit_max_ttl),
            "id": entry.id,
            "issue_time": rfc3339(entry.creation_time),
            "meta": entry.meta,
            "num_uses": max(entry.num_uses, 0),
            "orphan": entry.orphan,
            "path": entry.path,
            "policies": list(entry.policies),
            "renewable": entry.renewable,
            "ttl": entry.remaining(now),
            "type": entry.type,
        }
        if entry.role:
            data["role"] = entry.role
        if entry.period:
            data["period"] = int(entry.period)
        if entry.bound_cidrs:
            data["bound_cidrs"] = cidr_strings(entry.bound_cidrs)
        if entry.last_renewal is not None:
            data["last_renewal"] = rfc3339(entry.last_renewal)
            data["last_renewal_time"] = int(entry.last_renewal)
        return data

    def auth_block(self, entry: TokenEntry) -> dict[str, Any]:
        """The response `auth` block (docs/facts/vault.md §4.1)."""
        return {
            "client_token": entry.id,
            "accessor": entry.accessor,
            "policies": list(entry.policies),
            "token_policies": list(entry.policies),
            "metadata": entry.meta,
            "lease_duration": int(entry.ttl),
            "renewable": entry.renewable,
            "entity_id": "",
            "token_type": entry.type,
            "orphan": entry.orphan,
            "mfa_requirement": None,
            "num_uses": max(entry.num_uses, 0),
        }


def require_found(entry: TokenEntry | None) -> TokenEntry:
    if entry is None:
        # CODE token_store.go handleLookup: `bad token` with permission denied.
        raise VaultError(403, "bad token")
    return entry
