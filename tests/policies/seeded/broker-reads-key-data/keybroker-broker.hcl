# keybroker-broker: the broker itself, through the `keybroker-broker` AppRole.
# It writes key data but can never read it back: no `read` (and no `patch`, whose
# merge would need the old data) on exchange-keys/data/.

# Write a new version (create for a new key, update for a replacement; always with cas).
# MISTAKE: read on key data
path "exchange-keys/data/site/+/+" {
  capabilities = ["create", "update", "read"]
}
path "exchange-keys/data/robot/+/+" {
  capabilities = ["create", "update"]
}

# Metadata holds only non-secret facts: read and write it, list keys, delete a key
# with all its versions.
path "exchange-keys/metadata/site/+/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/robot/+/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/site/+/" {
  capabilities = ["list"]
}
path "exchange-keys/metadata/robot/+/" {
  capabilities = ["list"]
}

# Destroy superseded versions after a replacement.
path "exchange-keys/destroy/site/+/+" {
  capabilities = ["update"]
}
path "exchange-keys/destroy/robot/+/+" {
  capabilities = ["update"]
}

# Resolve callers' tokens to their policies.
path "auth/token/lookup" {
  capabilities = ["update"]
}

# Keep its own token alive.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Write intents (as in policies/vault/keybroker-broker.hcl).
path "exchange-keys/metadata/intents/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/intents/" {
  capabilities = ["list"]
}

# Webhook records (as in policies/vault/keybroker-broker.hcl).
path "exchange-keys/metadata/webhooks/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/webhooks/" {
  capabilities = ["list"]
}
