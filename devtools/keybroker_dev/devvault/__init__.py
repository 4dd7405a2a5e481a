"""devvault: an in-memory server that speaks HashiCorp Vault's HTTP API.

It covers the subset keybroker uses (token auth, AppRole, KV v2, policies, audit,
response wrapping, sys endpoints) with Vault's documented semantics, and authorises
every request with the one ACL engine in `policies.acl`. Layout, moto-style:
state and behaviour live in the model modules (`tokens`, `kv`, `approle`, `policystore`,
`wrapping`, `audit`, `seal`); `routes_*` translate requests into model calls; `core`
runs Vault's request pipeline; `http` is the thin transport; `server` starts it.
Each behaviour cites the document it follows (docs/facts/vault.md sections).
"""
