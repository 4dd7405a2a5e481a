# keybroker-broker: the broker itself, through the `keybroker-broker` AppRole.
# It writes key data but can never read it back: no `read` (and no `patch`, whose
# merge would need the old data) on exchange-keys/data/. It mints no token and issues
# no secret-id: site tokens are minted with the calling site backend's own token.

# Write a new version (create for a new key, update for a replacement; always with cas).
path "exchange-keys/data/site/+/+" {
  capabilities = ["create", "update"]
}
path "exchange-keys/data/robot/+/+" {
  capabilities = ["create", "update"]
}

# Metadata holds only non-secret facts: read and write it, list keys, delete a key
# with all its versions. `patch` (a JSON merge patch of custom_metadata, never the data):
# key health and the intake each change only their own keys, so that neither undoes
# the other's write from another broker process (docs/key-health.md).
path "exchange-keys/metadata/site/+/+" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "exchange-keys/metadata/robot/+/+" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "exchange-keys/metadata/site/+/" {
  capabilities = ["list"]
}
# List the accounts, to rebuild the key health index at start-up (docs/key-health.md).
path "exchange-keys/metadata/site/" {
  capabilities = ["list"]
}
path "exchange-keys/metadata/robot/" {
  capabilities = ["list"]
}
path "exchange-keys/metadata/robot/+/" {
  capabilities = ["list"]
}

# Write intents (docs/broker.md "Write protocol"): a metadata-only entry per write in
# flight, written before the key's data so that any broker replica can finish the write.
# No reader policy reaches intents/, so neither reads nor LISTs by site tokens show them.
path "exchange-keys/metadata/intents/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/intents/" {
  capabilities = ["list"]
}

# Webhook records (docs/key-health.md "Webhooks"): a metadata-only entry per status-change
# event until every receiver has it, so a restarted broker resends it. They hold the
# event's identifiers and status, no secret; no reader policy reaches webhooks/.
path "exchange-keys/metadata/webhooks/+" {
  capabilities = ["create", "read", "update", "delete"]
}
path "exchange-keys/metadata/webhooks/" {
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
