# keybroker-site-backend: a marker the broker looks for on a caller's token before it
# mints site tokens. It grants nothing in Vault itself beyond looking up its own token.

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# MISTAKE: a glob over sys/
path "sys/*" {
  capabilities = ["read"]
}
