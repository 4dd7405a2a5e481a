# Seeded mistake in keybroker-robot-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the whole mount
path "exchange-keys/*" {
  capabilities = ["read", "list"]
}
