"""NETCONF server (RFC 6241/6242) over the management plane; see docs/netconf.md."""

from appliance.netconf.server import NetconfServer, load_or_create_host_key

__all__ = ["NetconfServer", "load_or_create_host_key"]
