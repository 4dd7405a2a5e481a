"""Seeded policy mistakes (tests/policies/seeded/<case>/): each case holds only its mistaken
stanzas, an overlay on one shipped policy, and expect.json (the violations `policy check`
must report, lines counted in the overlay).

An overlay stanza replaces the shipped stanza of the same path, or the one a preceding
`# REPLACES: path "..."` line names, in place; any other stanza is added after the
shipped ones. So a case says only what it gets wrong, and follows the shipped policy when
that changes (a full copy per case drifted from it: cases kept granting what the shipped
policy no longer did, or lacked what it had gained).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from policies.check import default_policies_dir

SEEDED = Path(__file__).parent / "seeded"
CASES = sorted(p.name for p in SEEDED.iterdir() if p.is_dir())

_PATH = re.compile(r'^path "([^"]*)"')
_REPLACES = re.compile(r'^# REPLACES: path "([^"]*)"')

# A line of the policy set: its text, and its line number in the overlay (None: shipped).
_Line = tuple[str, int | None]


@dataclass(frozen=True)
class SeededSet:
    directory: Path  # the shipped policies with the case's overlays applied
    overlay: str  # the file name of the case's (first) overlay
    _lines: dict[str, dict[int, int]]  # file -> overlay line -> line in the policy set

    def line(self, file: str, overlay_line: int) -> int:
        """Where line `overlay_line` of the overlay for `file` stands in the policy set."""
        return self._lines[file][overlay_line]


def policy_set(tmp_path: Path, *cases: str) -> SeededSet:
    """The shipped policies under `tmp_path` with the overlays of `cases` applied."""
    target = tmp_path / "policies"
    shutil.copytree(default_policies_dir(), target)
    overlays = [o for case in cases for o in sorted((SEEDED / case).glob("*.hcl"))]
    lines: dict[str, dict[int, int]] = {}
    for overlay in overlays:
        shipped = target / overlay.name
        merged = apply_overlay(shipped.read_text().splitlines(), overlay.read_text().splitlines())
        shipped.write_text("\n".join(text for text, _ in merged) + "\n")
        lines[overlay.name] = {n: i for i, (_, n) in enumerate(merged, start=1) if n is not None}
    return SeededSet(target, overlays[0].name, lines)


def apply_overlay(shipped: list[str], overlay: list[str]) -> list[_Line]:
    merged: list[_Line] = [(text, None) for text in shipped]
    for block, path, replaces in _blocks(overlay):
        found = _stanza(merged, replaces or path)
        if found is None:
            merged += [("", None), *block]
        else:
            start, end = found
            merged[start : end + 1] = block
    return merged


def _blocks(overlay: list[str]) -> list[tuple[list[_Line], str, str | None]]:
    """Each stanza with the comment lines before it: (lines, its path, REPLACES target)."""
    blocks: list[tuple[list[_Line], str, str | None]] = []
    pending: list[_Line] = []
    path, replaces = "", None
    for number, text in enumerate(overlay, start=1):
        if not pending and not text.strip():
            continue
        pending.append((text, number))
        if match := _REPLACES.match(text):
            replaces = match.group(1)
        elif match := _PATH.match(text):
            path = match.group(1)
        elif text.startswith("}") and path:
            blocks.append((pending, path, replaces))
            pending, path, replaces = [], "", None
    return blocks


def _stanza(lines: list[_Line], path: str) -> tuple[int, int] | None:
    """The first and last index of the stanza for `path` (its comments stay)."""
    for start, (text, _) in enumerate(lines):
        match = _PATH.match(text)
        if match and match.group(1) == path:
            end = next(i for i in range(start, len(lines)) if lines[i][0].startswith("}"))
            return start, end
    return None
