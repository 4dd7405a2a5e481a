# Seeded mistake in keybroker-robot-read.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the robot issues secret-ids for the site backend's AppRole (AppRole edge)
path "auth/approle/role/keybroker-site-backend/secret-id" {
  capabilities = ["update"]
}
