# keybroker-robot-transit: held with keybroker-robot-read by the robot's AppRole.
# HMACs and signatures with robot keys only (`robot-<account>-<exchange>`); nothing else
# in the Transit mount.
path "exchange-signing/hmac/robot-*" {
  capabilities = ["update"]
}
path "exchange-signing/sign/robot-*" {
  capabilities = ["update"]
}
