"""Non-stop routing (NSR): BGP sessions that survive a switchover of the routing engine.

Subpackages:

- ``store``: the checkpoint store (records, change feed for a standby, ownership leases
  with epochs); an embedded SQLite backend for one box and a MongoDB backend for several.
  See docs/nsr-store.md.
"""
