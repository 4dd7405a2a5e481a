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


def pinned_image(reference: str, provider: docker.Provider | None = None) -> pulumi.Output[str]:
    """`reference` pinned by digest: as given, or `reference@<digest the registry has>`.
    `provider`: a host's provider, so that no engine on the deploying machine is needed."""
    if DIGEST_REF.match(reference):
        return pulumi.Output.from_input(reference)
    opts = pulumi.InvokeOutputOptions(provider=provider) if provider is not None else None
    found = docker.get_registry_image_output(name=reference, opts=opts)
    return found.sha256_digest.apply(lambda digest: f"{reference}@{digest}")
