# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the broker may enable auth methods (admin-equivalent)
path "sys/auth/*" {
  capabilities = ["create", "update", "sudo"]
}
