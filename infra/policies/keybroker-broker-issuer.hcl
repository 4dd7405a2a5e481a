# keybroker-broker-issuer: held by the deployment (Pulumi's BrokerToken resources), never
# by the broker. It can mint broker tokens through one token role and look at them; it
# cannot read keys, change policies or revoke anything. Kept in AWS Secrets Manager, so
# that a new broker credential needs no root token after prod revokes it.

# Mint a periodic broker token, response-wrapped, through the role (policies fixed by it).
path "auth/token/create/keybroker-broker-periodic" {
  capabilities = ["update"]
}

# See whether an issued broker token still lives (pulumi refresh).
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# Keep its own periodic token alive on every deployment.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
