# keybroker-robot-read: held by the trading robot through the `keybroker-robot` AppRole.
# Reads robot keys and their metadata (to notice new versions); nothing under site/.

# MISTAKE: sudo on a non-admin policy
path "exchange-keys/data/robot/+/+" {
  capabilities = ["read", "sudo"]
}

path "exchange-keys/metadata/robot/+/+" {
  capabilities = ["read"]
}

path "exchange-keys/metadata/robot/+/" {
  capabilities = ["list"]
}
