# Seeded mistake in keybroker-robot-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: "meta*" matches mid-segment: metadata/site/... too
path "exchange-keys/meta*" {
  capabilities = ["list"]
}
