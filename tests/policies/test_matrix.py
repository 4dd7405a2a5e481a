"""`policy matrix`: every cell is the exact coverage of a class by one principal."""

from __future__ import annotations

from pathlib import Path

from policies.invariants import load_invariants
from policies.matrix import DEFAULT_ROWS, build_matrix


def test_shipped_matrix_separates_roles() -> None:
    m = build_matrix(None, None)
    cell = m.cells
    assert cell[("site", "exchange-keys/data/site/+/+")].levels["read"] == "all"
    assert set(cell[("site", "exchange-keys/data/robot/+/+")].levels.values()) == {"none"}
    assert cell[("robot", "exchange-keys/data/robot/+/+")].levels["read"] == "all"
    assert set(cell[("robot", "exchange-keys/data/site/+/+")].levels.values()) == {"none"}
    broker_data = cell[("broker", "exchange-keys/data/site/+/+")].levels
    assert broker_data["create"] == broker_data["update"] == "all"
    assert broker_data["read"] == broker_data["patch"] == "none"
    for principal in m.principals:
        for _, pattern in m.rows:
            assert cell[(principal, pattern)].levels["sudo"] == "none"


def test_partial_cells_carry_an_example_and_the_granting_stanza() -> None:
    m = build_matrix(None, None)
    c = m.cells[("broker", "exchange-keys/*")]
    assert c.levels["read"] == "some"
    assert c.examples["read"].startswith("exchange-keys/metadata/")
    assert all(s.split(":")[0].endswith("keybroker-broker.hcl") for s in c.sources["read"])


def test_matrix_reports_every_invariant() -> None:
    m = build_matrix(None, None)
    assert len(m.invariants) == len(load_invariants().invariants) >= 20
    assert all(not inv.violations for inv in m.invariants)


def test_default_rows_without_a_matrix_section(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("principals:\n  robot: [keybroker-robot-read]\n")
    m = build_matrix(None, inv)
    assert m.rows == DEFAULT_ROWS and m.principals == ["robot"]
