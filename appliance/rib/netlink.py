"""rtnetlink routes, addresses and links: encoding, batched requests, dumps, monitoring.

Route messages are encoded here with ``struct`` and sent many per ``sendmsg`` (only the last
message of a batch asks for an ACK; the kernel reports every failing message with its own
sequence number, so failures are known per prefix). pyroute2's ``IPRoute.route()`` costs one
round trip and ~400 µs per route here (bench/fib_install.py measures both); this costs a few
µs. pyroute2 is used for the rarer address and link changes (appliance/rib/interfaces.py).

Sockets can be opened inside a named network namespace: a short-lived helper thread enters the
namespace (``setns`` only affects the calling thread), creates the socket and exits; the socket
keeps its namespace for life.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTN_UNICAST, RTN_BLACKHOLE = 1, 6
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RT_TABLE_COMPAT = 252
IFA_ADDRESS, IFA_LOCAL, IFA_PROTO = 1, 2, 11
IFLA_IFNAME = 3
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000

RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTM = struct.Struct("=BBBBBBBBI")  # rtmsg
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_RTNH = struct.Struct("=HBBi")  # rtnexthop: len, flags, hops, ifindex
_IFA = struct.Struct("=BBBBI")  # ifaddrmsg
_IFI = struct.Struct("=BxHiII")  # ifinfomsg
_ERR = struct.Struct("=i")

AF_BY_FAM = {4: socket.AF_INET, 6: socket.AF_INET6}
FAM_BY_AF = {socket.AF_INET: 4, socket.AF_INET6: 6}

_libc = ctypes.CDLL(None, use_errno=True)


class NetlinkError(OSError):
    pass


class KernelRoute(NamedTuple):
    """A route as the FIB sees it: type "unicast" | "blackhole"; next hops sorted
    ``(gateway text | None, ifindex)`` (empty for blackhole); priority (metric)."""

    type: str
    nexthops: tuple
    priority: int = 0


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(rtype: int, payload: bytes) -> bytes:
    ln = 4 + len(payload)
    return _RTA.pack(ln, rtype) + payload + b"\x00" * (_align(ln) - ln)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, 0x40000000) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def netns_path(netns: str | None) -> str | None:
    if netns is None:
        return None
    return netns if netns.startswith("/") else f"/var/run/netns/{netns}"


def in_netns(netns: str | None, fn):
    """Run ``fn()`` in a helper thread inside ``netns`` (None: here) and return its result."""
    path = netns_path(netns)
    if path is None:
        return fn()
    result: dict = {}

    def target() -> None:
        try:
            _setns(path)
            result["v"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["e"] = exc

    t = threading.Thread(target=target, name="fcr-setns", daemon=True)
    t.start()
    t.join(10)
    if "e" in result:
        raise result["e"]
    if "v" not in result:
        raise TimeoutError(f"could not enter namespace {netns}")
    return result["v"]


def open_socket(netns: str | None = None, groups: int = 0, rcvbuf: int = 32 << 20,
                sndbuf: int = 8 << 20) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        for opt, val in ((socket.SO_RCVBUF, rcvbuf), (socket.SO_SNDBUF, sndbuf)):
            try:  # root may exceed rmem_max/wmem_max
                s.setsockopt(socket.SOL_SOCKET, opt + 32, val)  # SO_RCVBUFFORCE = 33, SO_SNDBUFFORCE = 32
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, opt, val)
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            try:
                s.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:
                pass
        s.bind((0, groups))
        return s

    return in_netns(netns, make)


# --------------------------------------------------------------------------- parsing


def iter_messages(data: bytes | memoryview) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, body) for each nlmsg in a datagram."""
    mv = memoryview(data)
    off, end = 0, len(mv)
    while off + 16 <= end:
        ln, typ, flags, seq, _pid = _HDR.unpack_from(mv, off)
        if ln < 16:
            break
        yield typ, flags, seq, mv[off + 16: off + ln]
        off += _align(ln)


def iter_attrs(body: memoryview, off: int) -> Iterator[tuple[int, memoryview]]:
    end = len(body)
    while off + 4 <= end:
        ln, typ = _RTA.unpack_from(body, off)
        if ln < 4:
            break
        yield typ & 0x3FFF, body[off + 4: off + ln]
        off += _align(ln)


def error_text(body: memoryview) -> tuple[int, str]:
    """(errno, message) of an NLMSG_ERROR body (errno 0 = ACK)."""
    (err,) = _ERR.unpack_from(body, 0)
    err = -err
    if err == 0:
        return 0, ""
    msg = os.strerror(err)
    # with NETLINK_CAP_ACK the original message is not echoed: ext-ack TLVs follow its header
    if len(body) >= 20:
        for typ, val in iter_attrs(body, 20):
            if typ == NLMSGERR_ATTR_MSG:
                msg += ": " + bytes(val).rstrip(b"\x00").decode(errors="replace")
    return err, msg


def parse_route(body: memoryview) -> tuple[int, int, int, int, int, KernelRoute] | None:
    """RTM_NEWROUTE body -> (fam, key, table, protocol, rtm_type, KernelRoute) or None."""
    af, dst_len, _src_len, _tos, table, proto, _scope, rtype, _flags = _RTM.unpack_from(body, 0)
    fam = FAM_BY_AF.get(af)
    if fam is None:
        return None
    dst = 0
    gw = None
    oif = 0
    prio = 0
    mp = None
    for typ, val in iter_attrs(body, 12):
        if typ == RTA_DST:
            dst = int.from_bytes(val, "big")
        elif typ == RTA_TABLE:
            table = _U32.unpack_from(val, 0)[0]
        elif typ == RTA_GATEWAY:
            gw = socket.inet_ntop(af, val)
        elif typ == RTA_OIF:
            oif = _U32.unpack_from(val, 0)[0]
        elif typ == RTA_PRIORITY:
            prio = _U32.unpack_from(val, 0)[0]
        elif typ == RTA_MULTIPATH:
            mp = []
            off = 0
            while off + 8 <= len(val):
                ln, _f, _h, ifi = _RTNH.unpack_from(val, off)
                if ln < 8:
                    break
                ngw = None
                for t2, v2 in iter_attrs(val[off: off + ln], 8):
                    if t2 == RTA_GATEWAY:
                        ngw = socket.inet_ntop(af, v2)
                mp.append((ngw, ifi))
                off += _align(ln)
    if rtype == RTN_BLACKHOLE:
        route = KernelRoute("blackhole", (), prio)
    elif rtype == RTN_UNICAST:
        nhs = tuple(sorted(mp, key=_nh_sort)) if mp is not None else ((gw, oif),)
        route = KernelRoute("unicast", nhs, prio)
    else:
        route = KernelRoute(f"type-{rtype}", (), prio)
    return fam, (dst << 8) | dst_len, table, proto, rtype, route


def _nh_sort(nh: tuple) -> tuple:
    return (nh[0] or "", nh[1])


# --------------------------------------------------------------------------- encoding


def _table_fields(table: int) -> tuple[int, bytes]:
    return (table if table < 256 else RT_TABLE_COMPAT), _attr(RTA_TABLE, _U32.pack(table))


def encode_route(cmd: int, flags: int, seq: int, fam: int, key: int, route: KernelRoute | None,
                 table: int, proto: int, priority: int) -> bytes:
    """RTM_NEWROUTE / RTM_DELROUTE for ``key`` (route None: a delete by prefix+priority)."""
    af = AF_BY_FAM[fam]
    alen = 4 if fam == 4 else 16
    net, plen = key >> 8, key & 0xFF
    rtm_table, table_attr = _table_fields(table)
    parts = [table_attr, _attr(RTA_DST, net.to_bytes(alen, "big")),
             _attr(RTA_PRIORITY, _U32.pack(priority))]
    rtype, scope = RTN_UNICAST, RT_SCOPE_UNIVERSE
    if route is None:
        # A delete matches by prefix, table, protocol and priority only: type 0
        # (RTN_UNSPEC) and scope RT_SCOPE_NOWHERE (255) are the kernel's "any", so
        # blackhole and link-scope routes of ours are found too (fib_table_delete).
        rtype, scope = 0, 255
    else:
        if route.type == "blackhole":
            rtype = RTN_BLACKHOLE
        else:
            nhs = route.nexthops
            if len(nhs) == 1:
                gw, oif = nhs[0]
                if gw is not None:
                    parts.append(_attr(RTA_GATEWAY, socket.inet_pton(af, gw)))
                elif fam == 4:
                    scope = RT_SCOPE_LINK
                if oif:
                    parts.append(_attr(RTA_OIF, _U32.pack(oif)))
            else:
                mp = []
                for gw, oif in nhs:
                    sub = _attr(RTA_GATEWAY, socket.inet_pton(af, gw)) if gw is not None else b""
                    mp.append(_RTNH.pack(8 + len(sub), 0, 0, oif or 0) + sub)
                parts.append(_attr(RTA_MULTIPATH, b"".join(mp)))
    body = _RTM.pack(af, plen, 0, 0, rtm_table, proto, scope, rtype, 0) + b"".join(parts)
    return _HDR.pack(16 + len(body), cmd, flags, seq, 0) + body


def dump_request(cmd: int, seq: int, fam: int | None, table: int | None = None,
                 proto: int = 0) -> bytes:
    af = AF_BY_FAM[fam] if fam else socket.AF_UNSPEC
    if cmd == RTM_GETROUTE:
        attrs = b""
        rtm_table = 0
        if table is not None:
            rtm_table, attrs = _table_fields(table)
        body = _RTM.pack(af, 0, 0, 0, rtm_table, proto, 0, 0, 0) + attrs
    elif cmd == RTM_GETADDR:
        body = _IFA.pack(af, 0, 0, 0, 0)
    else:
        body = _IFI.pack(af, 0, 0, 0, 0)
    return _HDR.pack(16 + len(body), cmd, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_addr(body: memoryview) -> tuple[int, str, int, int, int, int] | None:
    """RTM_NEWADDR/DELADDR body -> (fam, address, prefixlen, ifindex, scope, proto)."""
    af, plen, _flags, scope, index = _IFA.unpack_from(body, 0)
    fam = FAM_BY_AF.get(af)
    if fam is None:
        return None
    addr = local = None
    proto = 0
    for typ, val in iter_attrs(body, 8):
        if typ == IFA_ADDRESS:
            addr = socket.inet_ntop(af, val)
        elif typ == IFA_LOCAL:
            local = socket.inet_ntop(af, val)
        elif typ == IFA_PROTO:
            proto = val[0]
    a = local or addr
    if a is None:
        return None
    return fam, a, plen, index, scope, proto


def parse_link(body: memoryview) -> tuple[int, str, int] | None:
    """RTM_NEWLINK body -> (ifindex, name, flags)."""
    _af, _type, index, flags, _change = _IFI.unpack_from(body, 0)
    name = None
    for typ, val in iter_attrs(body, 16):
        if typ == IFLA_IFNAME:
            name = bytes(val).rstrip(b"\x00").decode()
    if name is None:
        return None
    return index, name, flags


# --------------------------------------------------------------------------- requests


class RouteSocket:
    """A netlink socket for batched route changes and dumps (one user thread at a time)."""

    def __init__(self, netns: str | None = None, timeout: float = 30.0) -> None:
        self.sock = open_socket(netns)
        self.sock.settimeout(timeout)
        self.seq = 1

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> bytes:
        return self.sock.recv(1 << 20)

    def dump(self, cmd: int, fam: int | None, table: int | None = None,
             proto: int = 0) -> Iterator[tuple[int, memoryview]]:
        """(type, body) of every message of a dump; bounded by the socket timeout."""
        self.seq += 1
        seq = self.seq
        self.sock.send(dump_request(cmd, seq, fam, table, proto))
        while True:
            data = self._recv()
            for typ, _flags, mseq, body in iter_messages(data):
                if mseq != seq:
                    continue
                if typ == NLMSG_DONE:
                    return
                if typ == NLMSG_ERROR:
                    err, msg = error_text(body)
                    if err:
                        raise NetlinkError(err, msg)
                    return
                yield typ, body

    def dump_routes(self, fam: int, table: int, proto: int | None = None
                    ) -> dict[int, KernelRoute]:
        """Routes of ``table`` (and ``proto`` if given) of one family: key -> KernelRoute.
        Where several routes share a prefix (different metrics) the lowest metric wins here;
        see `dump_routes_all` for all of them."""
        out: dict[int, KernelRoute] = {}
        for key, route in self.dump_routes_all(fam, table, proto):
            old = out.get(key)
            if old is None or route.priority < old.priority:
                out[key] = route
        return out

    def dump_routes_all(self, fam: int, table: int, proto: int | None = None
                        ) -> list[tuple[int, KernelRoute]]:
        out = []
        for typ, body in self.dump(RTM_GETROUTE, fam, table, proto or 0):
            if typ != RTM_NEWROUTE:
                continue
            r = parse_route(body)
            if r is None:
                continue
            rfam, key, rtable, rproto, _rtype, route = r
            if rfam != fam or rtable != table or (proto is not None and rproto != proto):
                continue
            out.append((key, route))
        return out

    def batch(self, messages: list[tuple[int, bytes]], chunk_bytes: int = 256 << 10
              ) -> dict[int, str]:
        """Send encoded messages (``(tag, bytes-with-seq-placeholder)`` built by `encode`)
        many per sendmsg. Returns ``{tag: error}`` for the messages the kernel refused."""
        errors: dict[int, str] = {}
        i, n = 0, len(messages)
        while i < n:
            buf = bytearray()
            seq_tag: dict[int, int] = {}
            while i < n and len(buf) < chunk_bytes:
                tag, msg = messages[i]
                self.seq += 1
                seq_tag[self.seq] = tag
                m = bytearray(msg)
                struct.pack_into("=I", m, 8, self.seq)
                if i == n - 1 or len(buf) + len(m) >= chunk_bytes:
                    flags = struct.unpack_from("=H", m, 6)[0] | NLM_F_ACK
                    struct.pack_into("=H", m, 6, flags)
                buf += m
                i += 1
            last = self.seq
            self.sock.send(buf)
            done = False
            while not done:
                data = self._recv()
                for typ, _flags, mseq, body in iter_messages(data):
                    if typ != NLMSG_ERROR or mseq not in seq_tag:
                        continue
                    err, msg = error_text(body)
                    if err:
                        errors[seq_tag[mseq]] = msg
                    if mseq == last:
                        done = True
        return errors


def encode_many(fam: int, items: Iterable[tuple[int, int, KernelRoute | None]], table: int,
                proto: int, priority: int) -> list[tuple[int, bytes]]:
    """``(key, op, route)`` with op 0 = add (create, exclusive), 1 = replace, 2 = delete."""
    out = []
    for key, op, route in items:
        if op == 2:
            msg = encode_route(RTM_DELROUTE, NLM_F_REQUEST, 0, fam, key, None, table, proto,
                               route.priority if route is not None else priority)
        else:
            flags = NLM_F_REQUEST | NLM_F_CREATE | (NLM_F_REPLACE if op == 1 else NLM_F_EXCL)
            msg = encode_route(RTM_NEWROUTE, flags, 0, fam, key, route, table, proto, priority)
        out.append((key, msg))
    return out
