"""AppRole auth method model: roles, role-ids, secret-ids, login.

DOC api-docs/auth/approle.mdx and auth/approle.mdx (docs/facts/vault.md §5): a login
needs the role's role_id and, with `bind_secret_id` (default), a live secret-id of that
role; secret-ids expire after `secret_id_ttl`, are consumed by `secret_id_num_uses`
(0 = unlimited) and may be bound to CIDRs (`secret_id_bound_cidrs` on the role,
`cidr_list` on the secret-id) checked against the client's address. The token gets
the role's `token_*` settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keybroker_dev.devvault import ids
from keybroker_dev.devvault.cidrs import Network, addr_allowed, cidr_strings, parse_cidrs
from keybroker_dev.devvault.clock import Clock, rfc3339
from keybroker_dev.devvault.durations import parse_duration
from keybroker_dev.devvault.errors import bad_request
from keybroker_dev.devvault.leases import LeaseConfig
from keybroker_dev.devvault.params import as_bool, as_int, as_str, as_str_list
from keybroker_dev.devvault.tokens import TokenEntry, TokenStore

INVALID_LOGIN = "invalid role or secret ID"


@dataclass
class AppRoleRole:
    name: str
    role_id: str = field(default_factory=ids.new_uuid)
    bind_secret_id: bool = True
    secret_id_bound_cidrs: tuple[Network, ...] = ()
    secret_id_num_uses: int = 0
    secret_id_ttl: float = 0.0
    local_secret_ids: bool = False
    token_ttl: float = 0.0
    token_max_ttl: float = 0.0
    token_policies: list[str] = field(default_factory=list)
    token_bound_cidrs: tuple[Network, ...] = ()
    token_explicit_max_ttl: float = 0.0
    token_no_default_policy: bool = False
    token_num_uses: int = 0
    token_period: float = 0.0
    token_type: str = "default"

    def update(self, data: dict[str, Any]) -> None:
        self.bind_secret_id = as_bool(data, "bind_secret_id", self.bind_secret_id)
        for key in ("secret_id_bound_cidrs", "token_bound_cidrs"):
            if key in data:
                setattr(self, key, parse_cidrs(data[key], key))
        for key in (
            "secret_id_ttl",
            "token_ttl",
            "token_max_ttl",
            "token_explicit_max_ttl",
            "token_period",
        ):
            if key in data:
                setattr(self, key, parse_duration(data[key], key))
        for key in ("secret_id_num_uses", "token_num_uses"):
            if key in data:
                value = as_int(data, key)
                if value < 0:
                    raise bad_request(f"{key} cannot be negative")
                setattr(self, key, value)
        policies = as_str_list(data, "token_policies")
        if policies is None:
            policies = as_str_list(data, "policies")  # legacy alias
        if policies is not None:
            self.token_policies = sorted({p.lower() for p in policies})
        self.token_no_default_policy = as_bool(
            data, "token_no_default_policy", self.token_no_default_policy
        )
        self.local_secret_ids = as_bool(data, "local_secret_ids", self.local_secret_ids)
        token_type = as_str(data, "token_type", self.token_type)
        if token_type not in ("service", "batch", "default", "default-service", "default-batch"):
            raise bad_request(f"invalid 'token_type' value {token_type!r}")
        self.token_type = token_type
        if self.token_max_ttl and self.token_ttl > self.token_max_ttl:
            raise bad_request("'token_ttl' cannot be greater than 'token_max_ttl'")
        if (
            not self.bind_secret_id
            and not self.secret_id_bound_cidrs
            and not self.token_bound_cidrs
        ):
            raise bad_request(
                "at least one constraint should be enabled on the role "
                "(bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bind_secret_id": self.bind_secret_id,
            "secret_id_bound_cidrs": cidr_strings(self.secret_id_bound_cidrs),
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": int(self.secret_id_ttl),
            "local_secret_ids": self.local_secret_ids,
            "token_ttl": int(self.token_ttl),
            "token_max_ttl": int(self.token_max_ttl),
            "token_policies": list(self.token_policies),
            "policies": list(self.token_policies),
            "token_bound_cidrs": cidr_strings(self.token_bound_cidrs),
            "token_explicit_max_ttl": int(self.token_explicit_max_ttl),
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": int(self.token_period),
            "token_type": self.token_type,
        }


@dataclass
class SecretID:
    secret_id: str = field(repr=False)
    accessor: str
    role: str
    creation_time: float
    ttl: float
    num_uses: int
    cidr_list: tuple[Network, ...]
    token_bound_cidrs: tuple[Network, ...]
    metadata: dict[str, str]

    def expired(self, now: float) -> bool:
        return bool(self.ttl) and now >= self.creation_time + self.ttl

    def view(self) -> dict[str, Any]:
        return {
            "cidr_list": cidr_strings(self.cidr_list),
            "creation_time": rfc3339(self.creation_time),
            "expiration_time": rfc3339(self.creation_time + self.ttl)
            if self.ttl
            else "0001-01-01T00:00:00Z",
            "last_updated_time": rfc3339(self.creation_time),
            "metadata": dict(self.metadata),
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": int(self.ttl),
            "token_bound_cidrs": cidr_strings(self.token_bound_cidrs),
        }


class AppRoleStore:
    def __init__(self, clock: Clock, tokens: TokenStore) -> None:
        self.clock = clock
        self.tokens = tokens
        self.roles: dict[str, AppRoleRole] = {}
        self.secret_ids: dict[str, SecretID] = {}

    def role(self, name: str) -> AppRoleRole:
        role = self.roles.get(name.lower())
        if role is None:
            raise bad_request(f"role {name!r} does not exist")
        return role

    def delete_role(self, name: str) -> None:
        self.roles.pop(name.lower(), None)
        for sid, entry in list(self.secret_ids.items()):
            if entry.role == name.lower():
                del self.secret_ids[sid]

    def set_role_id(self, name: str, role_id: str) -> None:
        if not role_id:
            raise bad_request("missing role_id")
        for other in self.roles.values():
            if other.role_id == role_id and other.name != name.lower():
                raise bad_request("role_id already in use")
        self.role(name).role_id = role_id

    def generate_secret_id(self, name: str, data: dict[str, Any], secret_id: str = "") -> SecretID:
        role = self.role(name)
        raw_meta = data.get("metadata")
        metadata: dict[str, str] = {}
        if raw_meta:
            try:
                parsed = json.loads(raw_meta) if isinstance(raw_meta, str) else raw_meta
            except ValueError as exc:
                raise bad_request("failed to parse metadata: not a JSON object") from exc
            if not isinstance(parsed, dict):
                raise bad_request("failed to parse metadata: not a JSON object")
            metadata = {str(k): str(v) for k, v in parsed.items()}
        cidr_list = parse_cidrs(data.get("cidr_list"), "cidr_list")
        for net in cidr_list:
            if role.secret_id_bound_cidrs and not any(
                net.version == bound.version and net.subnet_of(bound)  # type: ignore[arg-type]
                for bound in role.secret_id_bound_cidrs
            ):
                raise bad_request("failed to verify the CIDR restrictions set on the secret ID")
        ttl = parse_duration(data.get("ttl"), "ttl") or role.secret_id_ttl
        if role.secret_id_ttl and ttl > role.secret_id_ttl:
            ttl = role.secret_id_ttl
        num_uses = as_int(data, "num_uses", role.secret_id_num_uses)
        if num_uses < 0:
            raise bad_request("num_uses cannot be negative")
        if role.secret_id_num_uses and (num_uses == 0 or num_uses > role.secret_id_num_uses):
            num_uses = role.secret_id_num_uses
        entry = SecretID(
            secret_id=secret_id or ids.new_uuid(),
            accessor=ids.new_uuid(),
            role=role.name,
            creation_time=self.clock.now(),
            ttl=ttl,
            num_uses=num_uses,
            cidr_list=cidr_list or role.secret_id_bound_cidrs,
            token_bound_cidrs=parse_cidrs(data.get("token_bound_cidrs"), "token_bound_cidrs"),
            metadata=metadata,
        )
        if entry.secret_id in self.secret_ids:
            raise bad_request("secret_id already in use")
        self.secret_ids[entry.secret_id] = entry
        return entry

    def live_secret_id(self, secret_id: str) -> SecretID | None:
        entry = self.secret_ids.get(secret_id)
        if entry is not None and entry.expired(self.clock.now()):
            del self.secret_ids[secret_id]
            return None
        return entry

    def by_accessor(self, name: str, accessor: str) -> SecretID | None:
        for entry in list(self.secret_ids.values()):
            if entry.accessor == accessor and entry.role == name.lower():
                return self.live_secret_id(entry.secret_id)
        return None

    def login(
        self, data: dict[str, Any], remote_addr: str, mount_path: str, leases: LeaseConfig
    ) -> TokenEntry:
        role_id = as_str(data, "role_id")
        if not role_id:
            raise bad_request("missing role_id")
        role = next((r for r in self.roles.values() if r.role_id == role_id), None)
        if role is None:
            raise bad_request(INVALID_LOGIN)
        token_cidrs = role.token_bound_cidrs
        meta = {"role_name": role.name}
        if role.bind_secret_id:
            secret_id = as_str(data, "secret_id")
            if not secret_id:
                raise bad_request("missing secret_id")
            entry = self.live_secret_id(secret_id)
            if entry is None or entry.role != role.name:
                raise bad_request(INVALID_LOGIN)
            if not addr_allowed(remote_addr, entry.cidr_list):
                # CODE approle validation.go: an ErrorResponse (400) naming the address.
                raise bad_request(
                    f'source address "{remote_addr}" unauthorized through CIDR restrictions '
                    "on the secret ID"
                )
            if entry.num_uses:
                entry.num_uses -= 1
                if entry.num_uses == 0:
                    del self.secret_ids[secret_id]
            token_cidrs = entry.token_bound_cidrs or token_cidrs
            meta.update(entry.metadata)
        elif not addr_allowed(remote_addr, role.secret_id_bound_cidrs):
            raise bad_request(
                f'source address "{remote_addr}" unauthorized through CIDR restrictions on the role'
            )
        if not addr_allowed(remote_addr, token_cidrs):
            raise bad_request(
                f'source address "{remote_addr}" unauthorized through CIDR restrictions on the role'
            )
        token_type = "batch" if role.token_type in ("batch", "default-batch") else "service"
        return self.tokens.create_for_login(
            policies=list(role.token_policies),
            path=f"auth/{mount_path}login",
            display_name=mount_path.rstrip("/"),
            meta=meta,
            ttl=role.token_ttl,
            max_ttl=role.token_max_ttl,
            explicit_max_ttl=role.token_explicit_max_ttl,
            num_uses=role.token_num_uses,
            bound_cidrs=token_cidrs,
            token_type=token_type,
            no_default_policy=role.token_no_default_policy,
            leases=leases,
        )
