# Seeded mistake in keybroker-broker.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: KV v2 ignores parameter constraints
path "exchange-keys/data/site/+/+" {
  capabilities = ["create", "update"]
  denied_parameters = {
    "withdraw" = []
  }
}
