# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: read on key data
path "exchange-keys/data/site/+/+" {
  capabilities = ["create", "update", "read"]
}
