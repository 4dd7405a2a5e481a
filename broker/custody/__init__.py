"""Custody of exchange secrets: where the secret lives and who can use it (docs/custody.md).

`kv` keeps the secret in the KV v2 mount for the site and the robot to read;
`transit` imports it into a Vault Transit key that nobody can export, and the site and
the robot ask Vault for HMACs and signatures instead (broker/signing.py).
"""
