# Seeded mistake in keybroker-site-backend.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the site backend may redefine token roles (admin-equivalent)
path "auth/token/roles/keybroker-site" {
  capabilities = ["update"]
}
