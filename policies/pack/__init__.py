"""keybroker's Pulumi policy pack (CrossGuard): rules in `rules.py`, run by `__main__.py`.

Import `policies.pack.rules.POLICIES` to evaluate in-process; never import
`__main__` (PolicyPack starts a gRPC server and blocks, docs/facts/pulumi.md §4).
"""
