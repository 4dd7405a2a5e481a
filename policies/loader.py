"""Load policy files and directories into `Policy` objects.

A file's policy name is its file name without the extension, normalised the way
Vault's policy store normalises names (`strings.ToLower(strings.TrimSpace(name))`).
`root` cannot be loaded from a file: Vault never lets anyone write a policy by that
name, and an ACL holding it allows everything.
"""

from __future__ import annotations

from pathlib import Path

from policies.hcl import PolicyParseError, parse_policy
from policies.model import Policy

POLICY_SUFFIXES = (".hcl", ".json")
# Vault's immutable policy names (policy_store.go `immutablePolicies`).
RESERVED_NAMES = frozenset({"root", "response-wrapping", "control-group"})


def policy_name_for(path: Path) -> str:
    return path.stem.strip().lower()


def load_policy_file(path: Path) -> Policy:
    """Parse one file. Raises `PolicyParseError` (with the file name) or `OSError`."""
    name = policy_name_for(path)
    if name in RESERVED_NAMES:
        raise PolicyParseError(f'cannot load a policy named "{name}"', file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PolicyParseError("the file is not UTF-8 text", file=str(path)) from None
    return parse_policy(text, name=name, file=str(path))


def load_policy_files(paths: list[Path]) -> list[Policy]:
    """Parse each file; two files may not define the same policy name (Vault keeps one
    policy per name, so the set would be ambiguous)."""
    policies: list[Policy] = []
    seen: dict[str, Path] = {}
    for path in paths:
        name = policy_name_for(path)
        if name in seen and seen[name] != path:
            raise PolicyParseError(
                f'policy "{name}" is defined twice (also in {seen[name]})', file=str(path)
            )
        seen[name] = path
        policies.append(load_policy_file(path))
    return policies


def load_policy_dir(directory: Path) -> list[Policy]:
    """Every `*.hcl` / `*.json` file directly in `directory`, sorted by file name."""
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
    )
    return load_policy_files(files)
