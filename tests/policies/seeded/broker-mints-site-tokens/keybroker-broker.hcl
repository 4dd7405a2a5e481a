# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the broker mints site tokens itself (token role edge)
path "auth/token/create/keybroker-site" {
  capabilities = ["update"]
}
