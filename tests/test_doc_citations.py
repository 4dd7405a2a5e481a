"""Every `docs/...md §N` citation in the repository points at a file and a section that
exist here, and nothing cites the notes the project started from (issue 11)."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# `docs/facts/vault.md §4.3`, `docs/contracts.md §2`, `docs/facts/exchanges.md § Binance`;
# not the tail of a URL or of `api-docs/...mdx`.
CITATION = re.compile(
    r"(?<![\w./-])(docs/\w[\w./-]*?\.md)(?![\w-])"
    r"(?:,?\s*§\s?(?:(?P<number>\d+(?:\.\d+)*)|(?P<name>[A-Z][A-Za-z]+)))?"
)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
NUMBERED = re.compile(r"§?(\d+(?:\.\d+)*)\.?(?:\s|$)")
STALE = re.compile(
    r"CONTRACTS\.md|\.\./shared|/work/shared|(?<![\w./-])reference/[\w.-]+\.(?:md|json)"
)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    files = []
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if path.suffix in {".png", ".jpg", ".whl", ".gz"} or not path.is_file():
            continue
        files.append(path)
    return files


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


@cache
def sections(doc: Path) -> tuple[set[str], set[str]]:
    """(section numbers, first words of the headings) of a markdown file."""
    numbers, names = set(), set()
    for title in HEADING.findall(doc.read_text(encoding="utf-8")):
        if match := NUMBERED.match(title):
            numbers.add(match.group(1))
        names.add(title.split()[0])
    return numbers, names


def citations() -> list[tuple[str, str, str | None, str | None]]:
    found = []
    for path in tracked_text_files():
        text = _text(path)
        if text is None or path == Path(__file__).resolve():
            continue
        for match in CITATION.finditer(text):
            where = f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}"
            found.append((where, match.group(1), match.group("number"), match.group("name")))
    return found


def test_every_doc_citation_points_at_an_existing_file_and_section() -> None:
    found = citations()
    assert len(found) > 150  # the code does cite these documents
    broken = []
    for where, doc, number, name in found:
        target = REPO / doc
        if not target.is_file():
            broken.append(f"{where}: {doc} does not exist")
            continue
        numbers, names = sections(target)
        if number is not None and number not in numbers:
            broken.append(f"{where}: {doc} has no section {number}")
        if name is not None and name not in names:
            broken.append(f"{where}: {doc} has no section {name!r}")
    assert broken == []


@pytest.mark.parametrize(
    "doc",
    [
        "docs/contracts.md",
        "docs/facts/vault.md",
        "docs/facts/exchanges.md",
        "docs/facts/pulumi.md",
        "docs/facts/transit-and-escalation.md",
        "docs/facts/docker.md",
    ],
)
def test_the_reference_documents_exist(doc: str) -> None:
    assert (REPO / doc).is_file()


def test_nothing_cites_the_notes_outside_the_repository() -> None:
    stale = []
    for path in tracked_text_files():
        text = _text(path)
        if text is None or path == Path(__file__).resolve():
            continue
        for match in STALE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            stale.append(f"{path.relative_to(REPO)}:{line}: {match.group(0)}")
    assert stale == []


def test_the_checker_catches_a_broken_citation(tmp_path: Path) -> None:
    """The patterns above would see a wrong section number and a missing file."""
    sample = "see docs/contracts.md §9 and docs/facts/nope.md, docs/facts/exchanges.md § Binance"
    got = [(m.group(1), m.group("number"), m.group("name")) for m in CITATION.finditer(sample)]
    assert got == [
        ("docs/contracts.md", "9", None),
        ("docs/facts/nope.md", None, None),
        ("docs/facts/exchanges.md", None, "Binance"),
    ]
    assert "9" not in sections(REPO / "docs/contracts.md")[0]
    assert not list(CITATION.finditer("DOC api-docs/auth/token.mdx and https://x/docs/a.md"))
    assert not list(CITATION.finditer("every `docs/...md §N` citation"))
    # Spelled in pieces so that this check is not itself a citation of a file not here.
    assert STALE.search("see " + "CONTRACTS" + ".md") and STALE.search("(refer" + "ence/vault.md)")
    assert not STALE.search("https://docs.cdp.coinbase.com/advanced-trade/reference/x")
