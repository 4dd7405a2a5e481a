# keybroker-site-transit: held with keybroker-site-read by the site's batch tokens.
# Under `transit` custody the site never reads an exchange secret: it asks Vault for the
# HMAC or signature ccxt needs, with site keys only (Transit key names `site-<account>-
# <exchange>`; docs/custody.md). No read, export or backup of any key.
path "exchange-signing/hmac/site-*" {
  capabilities = ["update"]
}
path "exchange-signing/sign/site-*" {
  capabilities = ["update"]
}
