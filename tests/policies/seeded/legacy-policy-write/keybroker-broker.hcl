# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: legacy policy = "write" also grants read and list
path "exchange-keys/data/robot/+/+" {
  policy = "write"
}
