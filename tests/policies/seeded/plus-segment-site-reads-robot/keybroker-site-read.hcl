# Seeded mistake in keybroker-site-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# REPLACES: path "exchange-keys/data/site/+/+"
# MISTAKE: "+" instead of "site" in the role segment
path "exchange-keys/data/+/+/+" {
  capabilities = ["read"]
}
