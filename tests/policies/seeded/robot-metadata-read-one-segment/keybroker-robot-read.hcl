# Seeded mistake in keybroker-robot-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# REPLACES: path "exchange-keys/metadata/robot/+/+"
# MISTAKE: "+" instead of "+/+": one segment short, robot metadata reads fail
path "exchange-keys/metadata/robot/+" {
  capabilities = ["read"]
}
