# keybroker-broker-transit: held with keybroker-broker by the broker's AppRole.
# The broker brings keys into Transit and takes them out, but never uses them: no hmac,
# no sign, no export, no backup (docs/custody.md). `verify` answers only "valid or not"
# for an HMAC or signature the broker already holds: an oracle, not a signer.

# BYOK import (docs/facts/transit.md §1).
path "exchange-signing/wrapping_key" {
  capabilities = ["read"]
}
path "exchange-signing/keys/+/import" {
  capabilities = ["update"]
}
path "exchange-signing/keys/+/import_version" {
  capabilities = ["update"]
}

# Read a key's facts (type, versions, public keys; never material), allow deletion, delete.
path "exchange-signing/keys/+" {
  capabilities = ["read", "delete"]
}
path "exchange-signing/keys/+/config" {
  capabilities = ["update"]
}

# Prove an import: verify an HMAC computed locally, with the default or a named algorithm.
path "exchange-signing/verify/+" {
  capabilities = ["update"]
}
path "exchange-signing/verify/+/+" {
  capabilities = ["update"]
}
