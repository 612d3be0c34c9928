"""Management plane: YANG schema, datastores, commits, NETCONF and CLI front ends."""
