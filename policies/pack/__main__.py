"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policies/pack`.

Only builds the pack: constructing PolicyPack serves it over gRPC and blocks.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack.rules import POLICIES

PolicyPack(
    name="keybroker",
    enforcement_level=EnforcementLevel.ADVISORY,  # each policy sets its own level
    policies=POLICIES,
)
