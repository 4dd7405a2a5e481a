"""Conformance suite for devvault (runs unchanged against a real Vault when configured)."""
