# Seeded mistake in keybroker-intake.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: writing policies owns the Vault
path "sys/policies/acl/*" {
  capabilities = ["create", "update"]
}
