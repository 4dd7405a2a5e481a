"""Image references resolved to digests at deploy time.

Config names images by tag (`hashicorp/vault:1.21.4`); the registry says which digest
that tag is now, through pulumi-docker's `getRegistryImage` invoke (it asks the
registry's v2 API for the manifest digest, docs/deploy.md "Deploy facts"). Containers
then run `repo:tag@sha256:<digest>`, so what runs is pinned, and no digest is ever
typed by hand into a stack file. A reference already pinned by digest is used as is.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra.config import DIGEST_REF


def pinned_image(reference: str) -> pulumi.Output[str]:
    """`reference` pinned by digest: as given, or `reference@<digest the registry has>`."""
    if DIGEST_REF.match(reference):
        return pulumi.Output.from_input(reference)
    found = docker.get_registry_image_output(name=reference)
    return found.sha256_digest.apply(lambda digest: f"{reference}@{digest}")
