# keybroker-robot-read: held by the trading robot through the `keybroker-robot` AppRole.
# Reads robot keys and their metadata (to notice new versions); nothing under site/.

path "exchange-keys/data/robot/+/+" {
  capabilities = ["read"]
}

# MISTAKE: "+" instead of "+/+": one segment short, robot metadata reads fail
path "exchange-keys/metadata/robot/+" {
  capabilities = ["read"]
}

path "exchange-keys/metadata/robot/+/" {
  capabilities = ["list"]
}
