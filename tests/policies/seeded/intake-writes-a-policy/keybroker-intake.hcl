# Seeded mistake in keybroker-intake.hcl: each stanza below replaces the shipped stanza of
# the same path (or the one named by REPLACES), or is added after the shipped ones.

# MISTAKE: the intake marker may write ACL policies (admin-equivalent)
path "sys/policies/acl/keybroker-intake" {
  capabilities = ["update"]
}
