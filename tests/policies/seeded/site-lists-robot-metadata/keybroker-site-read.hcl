# Seeded mistake in keybroker-site-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: list on robot metadata reveals robot key names
path "exchange-keys/metadata/robot/+/" {
  capabilities = ["list"]
}
