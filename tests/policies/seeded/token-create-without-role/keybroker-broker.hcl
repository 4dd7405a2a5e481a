# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: token creation without the keybroker-site role
path "auth/token/create" {
  capabilities = ["update"]
}
