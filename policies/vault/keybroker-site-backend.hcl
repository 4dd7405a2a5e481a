# keybroker-site-backend: held by the site backend (AppRole `keybroker-site-backend`).
# The broker looks for it on a caller's token before it serves POST /v1/site-tokens,
# and mints the site token WITH that caller's token: only the site backend's identity,
# never the broker's, can create tokens from the keybroker-site role.

# Mint site tokens only through the keybroker-site role (batch, orphan, CIDR-bound,
# keybroker-site-read only).
path "auth/token/create/keybroker-site" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}
