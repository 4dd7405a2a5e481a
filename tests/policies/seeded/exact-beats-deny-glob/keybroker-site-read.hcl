# Seeded mistake in keybroker-site-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

path "exchange-keys/data/robot/*" {
  capabilities = ["deny"]
}

# MISTAKE: an exact path always beats any glob, deny included
path "exchange-keys/data/robot/acme/binance" {
  capabilities = ["read"]
}
