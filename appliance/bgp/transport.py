"""TCP socket helpers for BGP sessions: options, outgoing sockets, the listener.

No FSM and no BGP here. Socket options that Python's ``socket`` module does not
name are defined from the Linux headers (values are part of the kernel ABI).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable

from .config import NeighborConfig

log = logging.getLogger("fcr.bgp")

TCP_MD5SIG = getattr(socket, "TCP_MD5SIG", 14)            # linux/tcp.h
IP_MINTTL = getattr(socket, "IP_MINTTL", 21)              # linux/in.h
IPV6_MINHOPCOUNT = getattr(socket, "IPV6_MINHOPCOUNT", 73)  # linux/in6.h
TCP_MD5SIG_MAXKEYLEN = 80
_ACCEPTS_PER_WAKEUP = 32     # bounded work per loop callback
BGP_TTL_MAX = 255


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def session_ttl(config: NeighborConfig, ebgp: bool) -> tuple[int, int | None]:
    """(outgoing TTL, minimum accepted TTL or None) for a neighbor.

    GTSM (RFC 5082) sends 255 and accepts >= 256 - hops; otherwise eBGP uses TTL 1
    (directly connected) unless multihop is configured, and iBGP uses 255.
    """
    if config.ttl_security_hops is not None:
        hops = max(1, min(BGP_TTL_MAX, config.ttl_security_hops))
        return BGP_TTL_MAX, 256 - hops
    if ebgp:
        return (config.ebgp_multihop_ttl or 1), None
    return BGP_TTL_MAX, None


def md5sig_struct(peer_ip: str, key: str | bytes | None) -> bytes:
    """struct tcp_md5sig for ``peer_ip``; an empty key deletes the entry."""
    raw = key.encode() if isinstance(key, str) else (key or b"")
    if len(raw) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError("TCP MD5 key longer than 80 octets")
    addr = ipaddress.ip_address(peer_ip)
    if addr.version == 4:
        sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed
    else:
        sa = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + addr.packed + struct.pack("=I", 0)
    sa = sa.ljust(128, b"\x00")  # struct __kernel_sockaddr_storage
    # tcpm_flags, tcpm_prefixlen, tcpm_keylen, tcpm_ifindex, tcpm_key[80]
    return sa + struct.pack("=BBHI", 0, 0, len(raw), 0) + raw.ljust(TCP_MD5SIG_MAXKEYLEN, b"\x00")


def set_md5(sock: socket.socket, peer_ip: str, key: str | bytes | None) -> None:
    """Install (or with key None, remove) the TCP-MD5 key (RFC 2385) for peer_ip."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_struct(peer_ip, key))
    except OSError as exc:
        if key or exc.errno != errno.ENOENT:  # removing an absent key is fine
            raise


def set_ttl(sock: socket.socket, ttl: int, min_ttl: int | None) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        if min_ttl is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if min_ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)


def configure_session_socket(
    sock: socket.socket, *, ttl: int, min_ttl: int | None = None, md5_key: str | None = None,
    peer_ip: str | None = None,
) -> None:
    """Options every BGP session socket gets (outgoing or accepted)."""
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    set_ttl(sock, ttl, min_ttl)
    if md5_key and peer_ip:
        set_md5(sock, peer_ip, md5_key)


def create_client_socket(
    remote_ip: str,
    *,
    local_address: str | None = None,
    ttl: int = BGP_TTL_MAX,
    min_ttl: int | None = None,
    md5_key: str | None = None,
) -> socket.socket:
    """A non-blocking TCP socket ready for ``loop.sock_connect`` to remote_ip."""
    fam = family_of(remote_ip)
    sock = socket.socket(fam, socket.SOCK_STREAM)
    try:
        configure_session_socket(sock, ttl=ttl, min_ttl=min_ttl, md5_key=md5_key, peer_ip=remote_ip)
        if local_address:  # update-source
            sock.bind((local_address, 0))
    except BaseException:
        sock.close()
        raise
    return sock


AcceptCallback = Callable[[socket.socket, str], None]


class Listener:
    """Passive side: one listening socket per address, accepted sockets go to on_accept.

    ``on_accept(sock, remote_ip)`` owns the socket afterwards (non-blocking).
    "::" is bound IPV6_V6ONLY so "0.0.0.0" can share the port.
    """

    def __init__(
        self,
        addresses: Iterable[str],
        port: int,
        on_accept: AcceptCallback,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        backlog: int = 128,
    ) -> None:
        self.addresses = tuple(addresses)
        self.port = port
        self._on_accept = on_accept
        self._loop = loop
        self._backlog = backlog
        self._socks: list[socket.socket] = []
        self._md5: dict[str, str] = {}

    async def start(self) -> None:
        self.open()

    def open(self) -> None:
        """Bind and listen on every address (synchronous; needs a running or given loop)."""
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        try:
            for addr in self.addresses:
                fam = family_of(addr)
                sock = socket.socket(fam, socket.SOCK_STREAM)
                self._socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((addr, self.port))
                sock.listen(self._backlog)
                sock.setblocking(False)
                for peer_ip, key in self._md5.items():
                    if family_of(peer_ip) == fam:
                        set_md5(sock, peer_ip, key)
                loop.add_reader(sock.fileno(), self._accept, sock)
        except BaseException:
            self.close()
            raise

    @property
    def bound(self) -> list[tuple[str, int]]:
        """(address, port) actually bound (useful with port 0)."""
        return [s.getsockname()[:2] for s in self._socks if s.fileno() >= 0]

    def set_md5(self, peer_ip: str, key: str | None) -> None:
        """Accept connections from peer_ip only with this TCP-MD5 key (None: remove)."""
        if key:
            self._md5[peer_ip] = key
        else:
            self._md5.pop(peer_ip, None)
        fam = family_of(peer_ip)
        for sock in self._socks:
            if sock.family == fam and sock.fileno() >= 0:
                set_md5(sock, peer_ip, key)

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: log and let the loop call again
                log.warning("event=bgp.accept-error error=%s", exc)
                return
            conn.setblocking(False)
            remote_ip = str(ipaddress.ip_address(addr[0].split("%", 1)[0]))
            try:
                self._on_accept(conn, remote_ip)
            except Exception:  # noqa: BLE001 - one bad callback must not kill the listener
                log.exception("event=bgp.accept-error remote=%s", remote_ip)
                conn.close()

    def close(self) -> None:
        for sock in self._socks:
            if sock.fileno() >= 0:
                if self._loop is not None:
                    self._loop.remove_reader(sock.fileno())
                sock.close()
        self._socks.clear()
