"""Our own next-hop addresses for a session, read from the kernel.

For next-hop-self we need, per session, an address of the family being advertised:
the session's local address when the families match, otherwise an address of the
other family on the same interface. For IPv6 on a shared link RFC 2545 §3 adds the
interface's link-local address as a second next hop.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

_IF_INET6 = Path("/proc/net/if_inet6")


def _ipv6_addresses() -> list[tuple[bytes, str, int]]:
    """(address, interface, scope) for every IPv6 address of this namespace."""
    out: list[tuple[bytes, str, int]] = []
    try:
        text = _IF_INET6.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6:
            out.append((bytes.fromhex(f[0]), f[5], int(f[3], 16)))
    return out


def _ipv4_interface(addr: str) -> str | None:
    """Interface holding an IPv4 address (via SIOCGIFCONF-free netlink-less lookup)."""
    try:
        import fcntl
        import struct

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _, name in socket.if_nameindex():
                try:
                    req = struct.pack("256s", name.encode()[:15])
                    res = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
                    if socket.inet_ntoa(res[20:24]) == addr:
                        return name
                except OSError:
                    continue
        finally:
            s.close()
    except OSError:
        return None
    return None


def local_next_hops(local_ip: str | None) -> tuple[bytes | None, bytes | None]:
    """(IPv4 next hop (4 octets), IPv6 next hop (16 or 32 octets)) for a session
    whose local socket address is ``local_ip``."""
    if not local_ip:
        return None, None
    ip = ipaddress.ip_address(local_ip)
    v6 = _ipv6_addresses()
    if ip.version == 4:
        ifname = _ipv4_interface(str(ip))
        globals_ = [a for a, dev, scope in v6 if dev == ifname and scope == 0]
        link_local = [a for a, dev, scope in v6 if dev == ifname and scope == 0x20]
        if globals_:
            nh6 = globals_[0] + (link_local[0] if link_local else b"")
        else:
            nh6 = ipaddress.IPv6Address(f"::ffff:{ip}").packed  # IPv4-mapped (RFC 4291 §2.5.5.2)
        return ip.packed, nh6
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped.packed, None
    ifname = next((dev for a, dev, _ in v6 if a == ip.packed), None)
    link_local = [a for a, dev, scope in v6 if dev == ifname and scope == 0x20]
    nh6 = ip.packed + (link_local[0] if link_local and not ip.is_link_local else b"")
    return None, nh6
