"""Reading the resource properties the keybroker policy pack checks.

CrossGuard hands a policy the engine's camelCase property names with secrets already
unwrapped to plaintext (docs/facts/pulumi.md §4), so nothing here may echo a value into
a message. Docker shapes follow pulumi-docker 5.x (docs/facts/pulumi.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policies.hcl import ListNode, Literal, ObjectNode, PolicyParseError, parse_document

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VAULT_CONFIG = "pulumi-python:dynamic/keybroker:VaultConfig"
ROOT_REVOCATION = "pulumi-python:dynamic/keybroker:RootTokenRevocation"

ROLE_LABEL = "keybroker.role"
ENVIRONMENT_LABEL = "keybroker.environment"
HOST_LABEL = "keybroker.host"
_VAULT_IMAGE = re.compile(r"(^|/)(vault|openbao)([:@]|$)")
DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def labels(props: Mapping[str, Any]) -> dict[str, str]:
    found = props.get("labels") or []
    if isinstance(found, Mapping):
        return {str(k): str(v) for k, v in found.items()}
    return {str(item.get("label")): str(item.get("value")) for item in found if item}


def role(props: Mapping[str, Any]) -> str | None:
    """`vault`, `broker` or None; an unlabelled container running a Vault image is Vault."""
    labelled = labels(props).get(ROLE_LABEL)
    if labelled:
        return labelled
    image = str(props.get("image") or "")
    return "vault" if _VAULT_IMAGE.search(image.split("@")[0]) else None


def host(props: Mapping[str, Any]) -> str:
    """The Docker host a container is placed on (label set by infra/components)."""
    return labels(props).get(HOST_LABEL) or "(unlabelled)"


def environment(props: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    return labels(props).get(ENVIRONMENT_LABEL) or config.get("environment")


def envs(props: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in props.get("envs") or []:
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


def uploads(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [u for u in props.get("uploads") or [] if isinstance(u, Mapping)]


def server_configs(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(file, text) of every Vault server config uploaded into /vault/config/."""
    return [
        (str(u.get("file")), str(u.get("content") or ""))
        for u in uploads(props)
        if str(u.get("file", "")).startswith("/vault/config/")
        and str(u.get("file")).endswith((".hcl", ".json"))
    ]


def blocks(text: str, kind: str) -> list[dict[str, Any]]:
    """Every top-level `kind "<label>" { ... }` block of an HCL/JSON server config, as
    {"__label__": label, key: value}; raises ValueError when the text does not parse.

    Uses the project's HCL1 parser (policies/hcl.py), the same one the ACL engine uses.
    """
    try:
        doc = parse_document(text)
    except PolicyParseError as exc:
        raise ValueError(f"the server config does not parse: {exc}") from None
    found = []
    for item in doc.items:
        keys = [k.value for k in item.keys]
        if keys and keys[0] == kind and isinstance(item.value, ObjectNode):
            block = {"__label__": keys[1] if len(keys) > 1 else "", **_object(item.value)}
            found.append(block)
    return found


def attribute(text: str, key: str) -> Any:
    """A top-level attribute of a server config (None when absent)."""
    doc = parse_document(text)
    for item in doc.items:
        if [k.value for k in item.keys] == [key]:
            return _value(item.value)
    return None


def _value(node: Any) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListNode):
        return [_value(n) for n in node.items]
    if isinstance(node, ObjectNode):
        return _object(node)
    return None


def _object(node: ObjectNode) -> dict[str, Any]:
    """Keys to values; a key given several times (e.g. `retry_join`) maps to a list."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for sub in node.items:
        if not sub.keys:
            continue
        key, value = sub.keys[0].value, _value(sub.value)
        if key not in out:
            out[key] = value
        elif key in repeated:
            out[key].append(value)
        else:
            out[key] = [out[key], value]
            repeated.add(key)
    return out


def truthy(value: Any) -> bool:
    """Vault's lenient booleans: true, "true", 1, "1"."""
    return value is True or str(value).strip().lower() in ("true", "1")


def pinned(image: str) -> bool:
    return bool(DIGEST_REF.match(image) or IMAGE_ID.match(image))
