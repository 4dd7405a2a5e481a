# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: patch acts on the stored secret
path "exchange-keys/data/robot/+/+" {
  capabilities = ["create", "update", "patch"]
}
