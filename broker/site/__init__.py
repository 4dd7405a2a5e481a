"""The key page: a reference site backend where users enter, check, change and delete
their exchange keys, and operators see every key by status (docs/key-page.md).

It talks to the broker's HTTP API with the intake token, which stays in this process.
"""
