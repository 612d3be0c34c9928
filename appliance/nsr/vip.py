"""The sessions' local address (VIP) moving with them to another box (NSR, docs/nsr.md).

A BGP session's local address lives on the active box. When the sessions move to a
standby box the address moves too: the old box removes it once its sockets are closed
silently, the new box adds it right before it restores them and tells the link at once
(so the peer's neighbour cache points at the new box before its next packet):

* IPv4: two gratuitous ARP requests (sender = target = the VIP, broadcast), sent with a
  raw AF_PACKET socket (no arping needed). A gratuitous ARP *request* overrides the
  peer's existing ARP entry even within its locktime (Linux `arp_is_garp`), which a
  gratuitous reply with a wrong target hardware address would not.
* IPv6: the address is added with NODAD (usable at once: a tentative address cannot be
  bound) and two unsolicited Neighbor Advertisements (override flag, target link-layer
  address option) go to ff02::1 from the VIP, hop limit 255 (RFC 4861 section 7.2.6).

    vip.add("10.0.92.1/24", "eth0")          # idempotent: an existing address is kept
    vip.remove("10.0.92.1/24", "eth0")       # idempotent: a missing address is fine

``netns`` (a name under /var/run/netns or a path) runs the whole step in that network
namespace (a short-lived thread that setns() itself; the process stays where it is).
Blocking (netlink round trips, a few hundred µs): call it from an executor.

IPv4: add the VIP after the box's own address on ``dev`` (it is then secondary). Removing a
*primary* IPv4 address also deletes the secondaries of its subnet unless
``net.ipv4.conf.<dev>.promote_secondaries`` is set.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyroute2 import IPRoute  # imported here: 0.2 s, never on the switchover path

T = TypeVar("T")

ETH_P_ARP = 0x0806
IFA_F_NODAD = 0x02
ANNOUNCE_COUNT = 2
CLONE_NEWNET = 0x40000000

_libc: Any = None


class VipError(RuntimeError):
    """The address could not be added or removed (the text says which step and why)."""


def parse(address_with_prefix: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        iface = ipaddress.ip_interface(address_with_prefix)
    except ValueError as exc:
        raise VipError(f"bad VIP {address_with_prefix!r}: {exc}") from None
    if "/" not in str(address_with_prefix):
        raise VipError(f"VIP {address_with_prefix!r} needs a prefix length (e.g. 10.0.92.1/24)")
    return iface


def from_params(vip: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``{"address": "10.0.92.1/24", "dev": "eth0"}`` (control-socket params) -> (address,
    dev); None stays None. VipError when malformed."""
    if vip is None:
        return None
    if not isinstance(vip, Mapping) or not isinstance(vip.get("address"), str) \
            or not isinstance(vip.get("dev"), str) or not vip["dev"]:
        raise VipError(f"vip must be {{'address': '<ip>/<prefix>', 'dev': '<interface>'}}, got {vip!r}")
    parse(vip["address"])
    return vip["address"], vip["dev"]


# -- namespaces ------------------------------------------------------------------------------
def _in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in ``netns`` (setns() in a short-lived thread); in this one when None."""
    if netns is None:
        return fn()
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    path = netns if "/" in netns else f"/var/run/netns/{netns}"
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            with open(path) as f:
                if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["exc"] = exc

    t = threading.Thread(target=target, name="fcr-vip-netns", daemon=True)
    t.start()
    t.join(30)
    if "exc" in result:
        raise result["exc"]
    if "value" not in result and t.is_alive():
        raise VipError(f"VIP step in namespace {netns} did not finish in 30 s")
    return result.get("value")  # type: ignore[return-value]


# -- netlink -----------------------------------------------------------------------------------
def _link(ipr: Any, dev: str) -> tuple[int, bytes | None]:
    idx = ipr.link_lookup(ifname=dev)
    if not idx:
        raise VipError(f"no interface {dev!r}")
    link = ipr.get_links(idx[0])[0]
    mac = link.get_attr("IFLA_ADDRESS")
    hw = bytes.fromhex(mac.replace(":", "")) if mac else None
    if hw is not None and (len(hw) != 6 or hw == b"\0" * 6):
        hw = None  # not Ethernet (or no address): nothing to announce at layer 2
    return idx[0], hw


def _netlink_error(exc: Exception) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _add(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, dev: str, count: int) -> None:
    with IPRoute() as ipr:
        idx, hw = _link(ipr, dev)
        kw: dict[str, Any] = {"index": idx, "address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        if iface.version == 6:
            kw["flags"] = IFA_F_NODAD
        try:
            ipr.addr("add", **kw)
        except Exception as exc:  # noqa: BLE001 - pyroute2 NetlinkError
            if _netlink_error(exc) != errno.EEXIST:
                raise VipError(f"add {iface} on {dev}: {exc}") from exc
    if hw is not None and count > 0:
        if iface.version == 4:
            _garp(str(iface.ip), dev, hw, count)
        else:
            _unsolicited_na(str(iface.ip), idx, hw, count)


def _remove(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, dev: str) -> None:
    with IPRoute() as ipr:
        idx, _hw = _link(ipr, dev)
        try:
            ipr.addr("del", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except Exception as exc:  # noqa: BLE001 - pyroute2 NetlinkError
            if _netlink_error(exc) not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                raise VipError(f"remove {iface} from {dev}: {exc}") from exc


# -- announcements -----------------------------------------------------------------------------
def garp_frame(address: str, hw: bytes) -> bytes:
    """An Ethernet broadcast gratuitous ARP request for ``address`` from ``hw``."""
    ip = socket.inet_aton(address)
    eth = b"\xff" * 6 + hw + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\0" * 6 + ip
    return (eth + arp).ljust(60, b"\0")


def na_message(address: str, hw: bytes) -> bytes:
    """An unsolicited Neighbor Advertisement (override flag) for ``address`` with the
    target link-layer address option; the kernel fills the ICMPv6 checksum."""
    flags = 0x20000000  # O (override); not R, not S
    return (struct.pack("!BBHI", 136, 0, 0, flags) + socket.inet_pton(socket.AF_INET6, address)
            + struct.pack("!BB", 2, 1) + hw)


def _close_later(s: socket.socket) -> None:
    """Closing a packet socket waits for an RCU grace period (synchronize_net: 10-30 ms);
    the frames are gone already, so the close happens off the caller's path."""
    threading.Thread(target=s.close, name="fcr-vip-close", daemon=True).start()


def _garp(address: str, dev: str, hw: bytes, count: int) -> None:
    frame = garp_frame(address, hw)
    # protocol 0: a send-only socket (no receive hook to register); the frame's protocol
    # is given per send
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        for _ in range(count):
            s.sendto(frame, (dev, ETH_P_ARP))
    except OSError as exc:
        s.close()
        raise VipError(f"gratuitous ARP for {address} on {dev}: {exc}") from exc
    _close_later(s)


def _unsolicited_na(address: str, ifindex: int, hw: bytes, count: int) -> None:
    msg = na_message(address, hw)
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            scope = ifindex if ipaddress.IPv6Address(address).is_link_local else 0
            s.bind((address, 0, 0, scope))
            for _ in range(count):
                s.sendto(msg, ("ff02::1", 0, 0, ifindex))
    except OSError as exc:
        raise VipError(f"unsolicited neighbor advertisement for {address}: {exc}") from exc


# -- the API -------------------------------------------------------------------------------------
def add(address_with_prefix: str, dev: str, netns: str | None = None, *, announce: int = ANNOUNCE_COUNT) -> None:
    """Put the VIP on ``dev`` (kept if already there) and announce it ``announce`` times
    (gratuitous ARP / unsolicited NA). VipError on failure."""
    iface = parse(address_with_prefix)
    _in_netns(netns, lambda: _add(iface, dev, announce))


def remove(address_with_prefix: str, dev: str, netns: str | None = None) -> None:
    """Take the VIP off ``dev`` (nothing to do when it is not there). VipError on failure."""
    iface = parse(address_with_prefix)
    _in_netns(netns, lambda: _remove(iface, dev))


def present(address_with_prefix: str, dev: str, netns: str | None = None) -> bool:
    """Whether ``dev`` holds the VIP's address."""
    iface = parse(address_with_prefix)

    def check() -> bool:
        with IPRoute() as ipr:
            idx, _hw = _link(ipr, dev)
            fam = socket.AF_INET if iface.version == 4 else socket.AF_INET6
            return any(a.get_attr("IFA_ADDRESS") == str(iface.ip)
                       for a in ipr.get_addr(index=idx, family=fam))

    return _in_netns(netns, check)


__all__ = ["VipError", "add", "from_params", "garp_frame", "na_message", "parse", "present", "remove"]
