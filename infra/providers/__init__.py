"""Pulumi dynamic providers (pulumi.dynamic): AWS through boto3, Vault through hvac.

Each provider class lives in an importable module so that Pulumi pickles it by
reference (docs/facts/pulumi.md §2); clients are created inside the CRUD methods, never
held on `self`, and no credential is ever an input or an output of a resource.
"""
