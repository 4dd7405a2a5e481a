# Seeded mistake in keybroker-intake.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the intake marker may write identity groups (admin-equivalent)
path "identity/group/name/*" {
  capabilities = ["create", "update"]
}
