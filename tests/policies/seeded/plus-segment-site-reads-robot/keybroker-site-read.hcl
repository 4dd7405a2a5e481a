# keybroker-site-read: held by the short-lived batch tokens the web site gets from the
# `keybroker-site` token role. Reads site keys; nothing under robot/.

# Read one site key: exchange-keys/data/site/<account>/<exchange>. `+` matches exactly
# one segment, so deeper or shallower paths are not granted.
# MISTAKE: "+" instead of "site" in the role segment
path "exchange-keys/data/+/+/+" {
  capabilities = ["read"]
}

# Discover which exchanges an account has site keys for (names only, no secrets).
path "exchange-keys/metadata/site/+/" {
  capabilities = ["list"]
}
