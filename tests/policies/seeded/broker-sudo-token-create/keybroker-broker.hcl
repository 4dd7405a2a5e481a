# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: role-less token creation with sudo (any policy)
path "auth/token/create-orphan" {
  capabilities = ["update", "sudo"]
}
