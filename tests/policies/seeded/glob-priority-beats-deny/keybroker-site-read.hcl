# Seeded mistake in keybroker-site-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: meant "all data, but never robot": the later glob wins over the deny
path "exchange-keys/data/*" {
  capabilities = ["read"]
}

# MISTAKE: this deny loses (its first wildcard comes earlier)
path "exchange-keys/+/robot/*" {
  capabilities = ["deny"]
}
