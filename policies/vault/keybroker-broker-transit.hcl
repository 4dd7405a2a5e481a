# keybroker-broker-transit: held with keybroker-broker by the broker's AppRole.
# The broker brings keys into Transit and takes them out, but never uses them: no hmac,
# no sign, no export, no backup (docs/custody.md). `verify` answers only "valid or not"
# for an HMAC or signature the broker already holds: an oracle, not a signer.

# BYOK import (docs/facts/transit.md §1). Only these parameters: `exportable` and
# `allow_plaintext_backup` default to false and cannot be sent, so the broker can never
# import a key that could leave Vault.
path "exchange-signing/wrapping_key" {
  capabilities = ["read"]
}
path "exchange-signing/keys/+/import" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext"    = []
    "hash_function" = []
    "type"          = []
  }
}
path "exchange-signing/keys/+/import_version" {
  capabilities = ["update"]
  allowed_parameters = {
    "ciphertext"    = []
    "hash_function" = []
  }
}

# Read a key's facts (type, versions, public keys; never material), allow deletion, delete.
path "exchange-signing/keys/+" {
  capabilities = ["read", "delete"]
}
# Config only to allow deletion: a config write can switch `exportable` on (never off,
# §5), so no other parameter is allowed.
path "exchange-signing/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = []
  }
}

# Prove an import: verify an HMAC computed locally, with the default or a named algorithm.
path "exchange-signing/verify/+" {
  capabilities = ["update"]
}
path "exchange-signing/verify/+/+" {
  capabilities = ["update"]
}
