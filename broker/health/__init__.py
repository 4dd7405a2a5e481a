"""Key health: consumers verify their keys, the broker keeps one status per key
(docs/key-health.md). `status` and `report` are pure; `service` and `index` are the
broker's side; the consumer's side is broker/verifier.py."""
