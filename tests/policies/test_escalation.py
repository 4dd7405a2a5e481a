"""Effective reach (policies/analysis/escalation.py, routes.py): which capabilities are
edges, which are not, and how chains are reported in every format."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from broker.layout import build_layout
from policies.analysis.escalation import ADMIN, Reach, Route
from policies.analysis.routes import GENERIC_ROUTES, routes_for
from policies.check import check
from policies.hcl import parse_policy
from policies.matrix import build_matrix
from policies.report import render_check, render_matrix
from tests.policies.seeded_cases import policy_set
from tests.policies.test_reports import SARIF_SUBSET

LAYOUT = build_layout(site_token_cidrs=("10.1.0.0/24",))


def reach_of(hcl: str, **others: str) -> list[tuple[str, list[str]]]:
    """(credential label, edge kinds of its chain) for a principal holding policy `p`."""
    policies = [parse_policy(hcl, name="p")]
    policies += [parse_policy(text, name=name) for name, text in others.items()]
    reach = Reach(policies, routes_for(LAYOUT))
    return [(c.label, [h.route.kind for h in c.via]) for c in reach.closure(["p"])]


@pytest.mark.parametrize(
    "hcl",
    [
        # Role-less creation without sudo: the child's policies must be a subset.
        'path "auth/token/create" { capabilities = ["create", "update", "read"] }',
        'path "auth/token/create-orphan" { capabilities = ["update"] }',
        # Lookup and unwrap need the other token itself; lookup-accessor blanks its id.
        'path "auth/token/lookup" { capabilities = ["update", "read"] }',
        'path "auth/token/lookup-accessor" { capabilities = ["update"] }',
        'path "sys/wrapping/unwrap" { capabilities = ["update"] }',
        'path "sys/wrapping/lookup" { capabilities = ["update"] }',
        # Reading a role or listing secret-id accessors hands out no credential.
        'path "auth/approle/role/keybroker-robot/role-id" { capabilities = ["read"] }',
        'path "auth/approle/role/keybroker-robot/secret-id" { capabilities = ["list"] }',
        'path "auth/token/roles/keybroker-site" { capabilities = ["read"] }',
        'path "sys/policies/acl/*" { capabilities = ["read", "list"] }',
        # Sudo on the path without update, and sys/auth writes without sudo.
        'path "auth/token/create" { capabilities = ["sudo"] }',
        'path "sys/auth/*" { capabilities = ["update"] }',
        # A deny beats the grant on the one path that matters.
        'path "auth/token/create/*" { capabilities = ["update"] }\n'
        'path "auth/token/create/keybroker-site" { capabilities = ["deny"] }',
    ],
)
def test_not_an_edge(hcl: str) -> None:
    assert reach_of(hcl) == [("p", [])]


@pytest.mark.parametrize(
    ("hcl", "label", "kinds"),
    [
        (
            'path "auth/token/create/+" { capabilities = ["update"] }',
            "keybroker-site-read, keybroker-site-transit",
            ["token-role"],
        ),
        (
            'path "auth/approle/role/keybroker-robot/custom-secret-id" {\n'
            '  capabilities = ["update"]\n}',
            "keybroker-robot-read, keybroker-robot-transit",
            ["approle-secret-id"],
        ),
        (
            'path "auth/approle/role/keybroker-robot/bind-secret-id" { capabilities = ["update"] }',
            "keybroker-robot-read, keybroker-robot-transit",
            ["approle-secret-id"],
        ),
        (
            'path "auth/token/create" { capabilities = ["update", "sudo"] }',
            ADMIN,
            ["token-create-sudo"],
        ),
        ('path "auth/token/roles/*" { capabilities = ["create"] }', ADMIN, ["token-role-write"]),
        ('path "auth/approle/role/+" { capabilities = ["update"] }', ADMIN, ["approle-role-write"]),
        ('path "sys/policy/x" { capabilities = ["create"] }', ADMIN, ["policy-write"]),
        ('path "sys/p*" { capabilities = ["update"] }', ADMIN, ["policy-write"]),
        ('path "sys/auth/+" { capabilities = ["update", "sudo"] }', ADMIN, ["auth-method-write"]),
        ('path "identity/entity-alias" { capabilities = ["create"] }', ADMIN, ["identity-write"]),
        ('path "sys/raw/*" { capabilities = ["read", "sudo"] }', ADMIN, ["raw-storage"]),
        ('path "+/+/+" { capabilities = ["update"] }', ADMIN, ["policy-write"]),
    ],
)
def test_edge(hcl: str, label: str, kinds: list[str]) -> None:
    assert (label, kinds) in reach_of(hcl)


def test_chains_are_shortest_first_and_cycles_end() -> None:
    """p -> AppRole site backend -> token role -> site-read; the site backend may also
    issue secret-ids for p's own role... there is none in the layout, but it may issue
    its own: a cycle back to a known credential is not followed."""
    backend = (
        'path "auth/token/create/keybroker-site" { capabilities = ["update"] }\n'
        'path "auth/approle/role/keybroker-site-backend/secret-id" { capabilities = ["update"] }\n'
    )
    out = reach_of(
        'path "auth/approle/role/keybroker-site-backend/secret-id" { capabilities = ["update"] }',
        **{"keybroker-site-backend": backend},
    )
    assert out == [
        ("p", []),
        ("keybroker-site-backend", ["approle-secret-id"]),
        ("keybroker-site-read, keybroker-site-transit", ["approle-secret-id", "token-role"]),
    ]


def test_credentials_are_never_pooled() -> None:
    """Each token is analysed alone: a deny in p does not hide what a minted token holds,
    and the minted token does not get p's grants."""
    hcl = (
        'path "auth/token/create/keybroker-site" { capabilities = ["update"] }\n'
        'path "exchange-keys/data/site/*" { capabilities = ["deny"] }\n'
    )
    site = 'path "exchange-keys/data/site/+/+" { capabilities = ["read"] }'
    policies = [parse_policy(hcl, name="p"), parse_policy(site, name="keybroker-site-read")]
    reach = Reach(policies, routes_for(LAYOUT))
    own, minted = reach.closure(["p"])
    assert not reach.principal(own).may("exchange-keys/data/site/a/b", "read")[0]
    assert reach.principal(minted).may("exchange-keys/data/site/a/b", "read")[0]
    assert not reach.principal(minted).may("auth/token/create/keybroker-site", "update")[0]


def test_routes_come_from_the_layout() -> None:
    routes = routes_for(LAYOUT)
    (site,) = [r for r in routes if r.kind == "token-role"]
    assert site.gains == LAYOUT.site_token_role.allowed_policies
    assert any("10.1.0.0/24" in note and "not who" in note for note in site.notes)
    approles = {r.label: r.gains for r in routes if r.kind == "approle-secret-id"}
    assert approles == {f"AppRole {a.name} secret-id": a.token_policies for a in LAYOUT.approles}
    assert all(r.doc.startswith("docs/facts/escalation.md §E") for r in routes)
    assert {r.kind for r in GENERIC_ROUTES} <= {r.kind for r in routes}


def test_a_new_route_needs_no_new_code() -> None:
    """E.g. a future Transit key export route: data only."""
    export = Route(
        kind="transit-export",
        label="transit key export",
        patterns=("transit/export/+/+",),
        needs=(("read",),),
        gains=("exported-key-holder",),
        doc="docs/facts/escalation.md §E7",
    )
    policies = [parse_policy('path "transit/export/*" { capabilities = ["read"] }', name="p")]
    reach = Reach(policies, (export,))
    assert [c.label for c in reach.closure(["p"])] == ["p", "exported-key-holder"]


def test_chain_in_every_check_format(tmp_path: Path) -> None:
    directory = policy_set(tmp_path, "broker-mints-site-tokens").directory
    report = check(directory, None)
    (v,) = [v for v in report.violations if v.id == "broker-never-reads-key-data"]
    chain = (
        "broker -> token role keybroker-site -> keybroker-site-read, keybroker-site-transit -> "
        "read exchange-keys/data/site/x/x"
    )
    assert v.chain == chain
    assert chain in v.message and "docs/facts/escalation.md §E1" in v.message

    doc = json.loads(render_check(report, "json"))
    (j,) = [x for x in doc["violations"] if x["id"] == "broker-never-reads-key-data"]
    assert [s["edge"] for s in j["via"]] == ["token role keybroker-site"]
    assert j["via"][0]["path"] == "auth/token/create/keybroker-site"
    assert j["via"][0]["gains"] == ["keybroker-site-read", "keybroker-site-transit"]
    assert {
        "principal": "broker",
        "credential": "keybroker-site-read, keybroker-site-transit",
    }.items() <= doc["reach"][0].items()

    sarif = json.loads(render_check(report, "sarif"))
    jsonschema.validate(sarif, SARIF_SUBSET)
    (s,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "broker-never-reads-key-data"]
    flow = s["codeFlows"][0]["threadFlows"][0]["locations"]
    assert flow[0]["location"]["physicalLocation"]["region"]["startLine"] == v.line
    assert flow[-1]["location"]["message"]["text"] == "read exchange-keys/data/site/x/x"

    text = render_check(report, "text")
    assert "token role keybroker-site" in text and "escalation routes" in text


def test_shipped_layout_reach_is_only_the_site_backends_role() -> None:
    report = check(None, None)
    assert report.passed
    assert [(e.principal, e.credential) for e in report.reach] == [
        ("site-backend", "keybroker-site-read, keybroker-site-transit")
    ]


def test_matrix_marks_effective_reach_apart_from_direct_grants() -> None:
    m = build_matrix(None, None)
    cell = m.cells[("site-backend", "exchange-keys/data/site/+/+")]
    assert cell.levels["read"] == "none"
    assert cell.reached["read"].level == "all"
    assert cell.reached["read"].chain.startswith("site-backend -> token role keybroker-site")
    assert m.cells[("broker", "exchange-keys/data/site/+/+")].reached == {}
    doc = json.loads(render_matrix(m, "json"))
    row = next(r for r in doc["rows"] if r["pattern"] == "exchange-keys/data/site/+/+")
    assert row["access"]["site-backend"]["read"]["via"].startswith("site-backend ->")
    assert "^read" in render_matrix(m, "text")
    assert 'class="cap all via read"' in render_matrix(m, "html")
