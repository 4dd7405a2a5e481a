"""keybroker's local doubles: devvault, the exchange sandbox and `keybroker dev`.

Installed beside the product (``pip install . ./devtools``); the broker image and a
plain ``pip install .`` never carry them.
"""
