# keybroker-intake: a marker the broker looks for on a caller's token before it accepts
# key submissions, listings and deletions. It grants nothing in Vault itself: callers
# never touch key paths directly, they go through the broker.

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# MISTAKE: the intake marker may write identity groups (admin-equivalent)
path "identity/group/name/*" {
  capabilities = ["create", "update"]
}
