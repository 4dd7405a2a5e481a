"""Vault ACL policy documents (HCL1 or JSON): the public face of four small modules.

- policies/hcl_parser.py: lexer and parser (HCL1 and JSON) -> an AST keeping every block;
- policies/hcl_policy.py: the policy decoder, Vault's `parseACLPolicyWithTemplating`;
- broker/durations.py: Vault's duration syntax (`min/max_wrapping_ttl`);
- policies/hcl_render.py: `Policy` -> HCL text that reads back to the same rules.

Code elsewhere imports these names from here.
"""

from __future__ import annotations

from broker.durations import parse_duration_second
from policies.hcl_parser import (
    MAX_NESTING,
    Item,
    ListNode,
    Literal,
    Node,
    ObjectNode,
    PolicyParseError,
    parse_document,
)
from policies.hcl_policy import parse_policy
from policies.hcl_render import render_policy

__all__ = [
    "MAX_NESTING",
    "Item",
    "ListNode",
    "Literal",
    "Node",
    "ObjectNode",
    "PolicyParseError",
    "parse_document",
    "parse_duration_second",
    "parse_policy",
    "render_policy",
]
