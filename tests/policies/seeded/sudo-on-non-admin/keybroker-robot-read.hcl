# Seeded mistake in keybroker-robot-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: sudo on a non-admin policy
path "exchange-keys/data/robot/+/+" {
  capabilities = ["read", "sudo"]
}
