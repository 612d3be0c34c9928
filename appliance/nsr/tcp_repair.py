"""Checkpoint and restore of established TCP connections with Linux TCP_REPAIR.

The field list and the restore order follow the kernel's rules for repair mode (CRIU's
libsoccr is the reference we read; this is an independent implementation). See
docs/nsr-tcp.md for the why of every step.

* `dump(sock) -> TcpState` puts the socket in repair mode and reads everything the kernel
  needs to rebuild it: addresses, sequence numbers, the three queues (receive queue, the
  sent-but-unacknowledged part and the not-yet-sent part of the send queue), the options
  negotiated at SYN time (MSS, window scale both ways, SACK, timestamps), the timestamp
  clock and the window. The caller must have frozen the traffic of the 4-tuple first
  (`appliance.nsr.netlock.NetLock`), otherwise the state moves under our feet.
* `restore(state, md5_key=..., netns=...) -> socket` rebuilds the connection in a new
  socket (in any process) without a packet on the wire.
* `close_silently(sock)` closes in repair mode: no FIN, no RST (DESIGN.md invariant 7).
* `leave_repair(sock)` leaves repair mode; the kernel then sends one window probe (a bare
  ACK), which prompts the peer to answer with its current ACK and window.

Linux only; needs CAP_NET_ADMIN in the socket's network namespace.
"""

from __future__ import annotations

import base64
import contextlib
import errno as errno_mod
import fcntl
import ipaddress
import os
import socket
import struct
import weakref
from dataclasses import dataclass, field, fields

from .netlock import run_in_netns

# linux/tcp.h
TCP_MAXSEG = 2
TCP_INFO = 11
TCP_MD5SIG = 14
TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_REPAIR_OPTIONS = 22
TCP_TIMESTAMP = 24
TCP_REPAIR_WINDOW = 29
TCP_CORK = 3

TCP_REPAIR_ON = 1
TCP_REPAIR_OFF = 0
TCP_REPAIR_OFF_NO_WP = -1  # leave repair mode without the window probe

TCP_NO_QUEUE = 0
TCP_RECV_QUEUE = 1
TCP_SEND_QUEUE = 2

# option codes for TCP_REPAIR_OPTIONS (net/tcp.h)
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERM = 4
TCPOPT_TIMESTAMP = 8

# tcpi_options bits
TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4

# linux/sockios.h, asm-generic/ioctls.h
SIOCINQ = 0x541B  # FIONREAD: rcv_nxt - copied_seq
SIOCOUTQ = 0x5411  # TIOCOUTQ: write_seq - snd_una
SIOCOUTQNSD = 0x894B  # write_seq - snd_nxt (not yet sent)

TCP_ESTABLISHED = 1
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_BINDTODEVICE = 25
SO_PRIORITY = 12
SO_MARK = 36
IP_TOS = 1
IP_TTL = 2
IP_MINTTL = 21
IPV6_UNICAST_HOPS = 16
IPV6_TCLASS = 67
IPV6_MINHOPCOUNT = 73
TCP_MD5SIG_MAXKEYLEN = 80
TCP_MIN_MSS = 88
TCP_MAX_USER_MSS = 32767  # MAX_TCP_WINDOW: a larger TCP_MAXSEG is refused (loopback)

_WINDOW = struct.Struct("=5I")  # struct tcp_repair_window
_REPAIR_OPT = struct.Struct("=2I")  # struct tcp_repair_opt {opt_code, opt_val}
_INT = struct.Struct("=i")
_UINT = struct.Struct("=I")
_CHUNK_MIN = 1024
_SEND_CHUNK = 256 * 1024


class TcpRepairError(OSError):
    """A TCP_REPAIR step failed: ``step`` names it, ``errno`` is the kernel's answer."""

    def __init__(self, step: str, err: int, detail: str = "") -> None:
        msg = f"tcp repair: {step}: {os.strerror(err) if err else 'failed'}"
        if detail:
            msg += f" ({detail})"
        super().__init__(err, msg)
        self.step = step
        self.detail = detail

    def __str__(self) -> str:  # OSError's default repeats errno oddly
        return self.strerror or ""


class _step:
    """``with _step(name):`` an OSError inside becomes TcpRepairError(name, errno). A class,
    not a generator context manager: it wraps every syscall (40 a socket), 0.3 us vs 2 us."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, OSError) and not isinstance(exc, TcpRepairError):
            raise TcpRepairError(self.name, exc.errno or errno_mod.EIO, str(exc)) from exc
        return False


@dataclass
class TcpWindow:
    """struct tcp_repair_window."""

    snd_wl1: int
    snd_wnd: int
    max_window: int
    rcv_wnd: int
    rcv_wup: int


@dataclass
class TcpState:
    """Everything needed to rebuild an established TCP connection. JSON-able via to_dict.

    Sequence numbers are the kernel's: ``snd_seq`` is write_seq (the sequence number after
    the last byte in the send queue), ``rcv_seq`` is rcv_nxt (after the last byte in the
    receive queue). The send queue starts at ``snd_seq - len(sent) - len(unsent)`` (snd_una)
    and the receive queue at ``rcv_seq - len(recv_queue)`` (the application's read point).
    """

    family: str  # "inet" | "inet6"
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    snd_seq: int
    rcv_seq: int
    send_queue_sent: bytes = b""  # sent, not yet acknowledged
    send_queue_unsent: bytes = b""  # never sent
    recv_queue: bytes = b""  # received and acknowledged, not read by the application
    mss: int = 536  # mss_clamp
    wscale: bool = False
    snd_wscale: int = 0
    rcv_wscale: int = 0
    sack: bool = False
    timestamps: bool = False
    timestamp: int = 0  # TCP_TIMESTAMP clock (tcp clock + tsoffset) at dump time
    window: TcpWindow | None = None
    scope_id: int = 0  # IPv6 link-local scope of the local address
    extra: dict = field(default_factory=dict)  # informational (TCP_INFO snd/rcv mss, ...)

    _BYTES = ("send_queue_sent", "send_queue_unsent", "recv_queue")

    @property
    def sock_family(self) -> int:
        return socket.AF_INET6 if self.family == "inet6" else socket.AF_INET

    def four_tuple(self) -> tuple[str, int, str, int]:
        return (self.local_addr, self.local_port, self.remote_addr, self.remote_port)

    def to_dict(self) -> dict:
        # by hand, not dataclasses.asdict: that deep-copies every field (the queues too),
        # 70 us a state; this is 10 us (it runs inside the freeze, once per session)
        d = {f.name: getattr(self, f.name) for f in _STATE_FIELDS}
        for k in self._BYTES:
            d[k] = base64.b64encode(d[k]).decode("ascii")
        if self.window is not None:
            d["window"] = vars(self.window).copy()
        d["extra"] = {k: dict(v) if isinstance(v, dict) else v for k, v in self.extra.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TcpState:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"TcpState: unknown fields {sorted(unknown)}")
        kw = dict(d)
        for k in cls._BYTES:
            if k in kw:
                v = kw[k]
                kw[k] = base64.b64decode(v, validate=True) if isinstance(v, str) else bytes(v)
        if kw.get("window") is not None and not isinstance(kw["window"], TcpWindow):
            kw["window"] = TcpWindow(**kw["window"])
        if kw.get("family") not in ("inet", "inet6"):
            raise ValueError(f"TcpState: family must be inet or inet6, not {kw.get('family')!r}")
        return cls(**kw)


# -- small socket helpers -----------------------------------------------------------------
_STATE_FIELDS = fields(TcpState)


def _set_int(sock: socket.socket, opt: int, val: int, step: str) -> None:
    with _step(step):
        sock.setsockopt(socket.IPPROTO_TCP, opt, val)


def _get_uint(sock: socket.socket, opt: int, step: str) -> int:
    with _step(step):
        return _UINT.unpack(sock.getsockopt(socket.IPPROTO_TCP, opt, _UINT.size))[0]


def _ioctl_int(sock: socket.socket, req: int, step: str) -> int:
    with _step(step):
        return _INT.unpack(fcntl.ioctl(sock.fileno(), req, _INT.pack(0)))[0]


# SO_REUSEADDR of sockets in repair mode, to set again when they leave it: the kernel keeps
# one sk_reuse field, which repair mode sets to "force" and leaving it to "no"
_REUSEADDR: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def repair_on(sock: socket.socket) -> None:
    if sock not in _REUSEADDR:
        try:
            reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        except OSError:
            reuse = 0
        if reuse in (0, 1):  # 2: already in repair mode (value unknown)
            _REUSEADDR[sock] = reuse
    _set_int(sock, TCP_REPAIR, TCP_REPAIR_ON, "repair-on")


def leave_repair(sock: socket.socket, window_probe: bool = True, push: bool = True) -> None:
    """Leave repair mode: the connection carries on. Call it after the 4-tuple is unfrozen.

    With ``window_probe`` the kernel sends one bare ACK (a window probe: sequence number
    snd_una - 1) which asks the peer for its current ACK and window. The peer may not
    answer: Linux rate-limits its answers to out-of-window segments to one per 500 ms per
    connection (net.ipv4.tcp_invalid_ratelimit). So with ``push`` the bytes queued but never
    sent (``send_queue_unsent`` of the dump) are also transmitted now, as far as the peer's
    restored window allows: nothing else would (no timer runs for them), and they would
    wait for the next write or the peer's next segment. Send the application's next
    message (a BGP KEEPALIVE) right after this: new data makes the peer acknowledge
    everything it has, which also repairs at once any segment the freeze dropped.
    """
    _set_int(sock, TCP_REPAIR, TCP_REPAIR_OFF if window_probe else TCP_REPAIR_OFF_NO_WP,
             "repair-off")
    if _REUSEADDR.pop(sock, 0):  # leaving repair mode cleared it
        with _step("SO_REUSEADDR"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if push:
        push_pending(sock)


def push_pending(sock: socket.socket) -> None:
    """Transmit what the send queue holds now (no-op when empty or corked): setting
    TCP_CORK to 0 makes the kernel push the pending frames, and changes nothing else on
    a socket that was not corked."""
    with _step("push"):
        if not sock.getsockopt(socket.IPPROTO_TCP, TCP_CORK):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 0)


def _set_queue(sock: socket.socket, queue: int, step: str) -> None:
    _set_int(sock, TCP_REPAIR_QUEUE, queue, step)


def _peek_queue(sock: socket.socket, queue: int, length: int, what: str) -> tuple[int, bytes]:
    _set_queue(sock, queue, f"select {what} queue")
    seq = _get_uint(sock, TCP_QUEUE_SEQ, f"read {what} queue sequence")
    if not length:
        return seq, b""
    with _step(f"read {what} queue"):
        # one byte more than expected: proves the queue holds exactly `length` bytes
        data = sock.recv(length + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    if len(data) != length:
        raise _QueueMoved(f"read {what} queue", errno_mod.EIO,
                          f"got {len(data)} bytes, expected {length}")
    return seq, data


class _QueueMoved(TcpRepairError):
    """The queues changed while they were read (a segment got past the freeze)."""


def _tcp_info(sock: socket.socket) -> dict:
    with _step("TCP_INFO"):
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
    if len(raw) < 24:
        raise TcpRepairError("TCP_INFO", errno_mod.EIO, f"short tcp_info ({len(raw)} bytes)")
    state, _ca, _retr, _probes, _backoff, options, wscales = struct.unpack_from("=7B", raw, 0)
    _rto, _ato, snd_mss, rcv_mss = struct.unpack_from("=4I", raw, 8)
    return {
        "state": state,
        "options": options,
        "snd_wscale": wscales & 0x0F,
        "rcv_wscale": wscales >> 4,
        "snd_mss": snd_mss,
        "rcv_mss": rcv_mss,
    }


# socket options carried to the new socket (extra["sockopts"]): what BGP sets on its
# sockets (TCP_NODELAY, TTL/GTSM minimum TTL, DSCP, VRF device, fwmark). A hand-over must
# not reopen the GTSM check or Nagle-delay the first KEEPALIVE while the engine re-applies
# its configuration. (name, level, option) for int options; the device name apart.
_SOCKOPTS = {
    "common": (("nodelay", socket.IPPROTO_TCP, socket.TCP_NODELAY),
               ("keepalive", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
               ("mark", socket.SOL_SOCKET, SO_MARK),
               ("priority", socket.SOL_SOCKET, SO_PRIORITY)),
    "inet": (("tos", socket.IPPROTO_IP, IP_TOS),
             ("ttl", socket.IPPROTO_IP, IP_TTL),
             ("minttl", socket.IPPROTO_IP, IP_MINTTL)),
    "inet6": (("tclass", socket.IPPROTO_IPV6, IPV6_TCLASS),
              ("hops", socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS),
              ("minhops", socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT)),
}


def _sockopt_table(family: str):
    return _SOCKOPTS["common"] + _SOCKOPTS[family]


def _read_sockopts(sock: socket.socket, family: str) -> dict:
    out: dict = {}
    for name, level, opt in _sockopt_table(family):
        try:
            out[name] = sock.getsockopt(level, opt)
        except OSError:  # an option this kernel does not know: nothing to carry
            continue
    try:
        dev = sock.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).split(b"\0", 1)[0]
    except OSError:
        dev = b""
    if dev:
        out["device"] = dev.decode()
    return out


def _apply_sockopts(sock: socket.socket, family: str, opts: dict) -> None:
    """Set the carried options that differ from the new socket's defaults (before bind:
    the device decides which addresses and routes the socket may use)."""
    if opts.get("device"):
        with _step("SO_BINDTODEVICE"):
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, opts["device"].encode())
    for name, level, opt in _sockopt_table(family):
        want = opts.get(name)
        if want is None:
            continue
        with _step(f"socket option {name}"):
            if sock.getsockopt(level, opt) != want:
                sock.setsockopt(level, opt, want)


def _read_queues(sock: socket.socket) -> tuple:
    """Sequence numbers, the three queues and the window, read consistently: every
    counter is read again afterwards and the read is repeated (3 times at most) if a
    segment changed anything meanwhile (possible only in the microseconds after the
    freeze, for a packet already past the netfilter hook)."""
    for _attempt in range(3):
        outq = _ioctl_int(sock, SIOCOUTQ, "SIOCOUTQ")
        unsent = _ioctl_int(sock, SIOCOUTQNSD, "SIOCOUTQNSD")
        inq = _ioctl_int(sock, SIOCINQ, "SIOCINQ")
        if not 0 <= unsent <= outq:
            raise TcpRepairError("SIOCOUTQNSD", errno_mod.EIO, f"unsent {unsent} > queued {outq}")
        with _step("TCP_REPAIR_WINDOW"):
            raw_window = sock.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, _WINDOW.size)
        try:
            rcv_seq, recvq = _peek_queue(sock, TCP_RECV_QUEUE, inq, "receive")
            snd_seq, sendq = _peek_queue(sock, TCP_SEND_QUEUE, outq, "send")
        except _QueueMoved:
            _set_queue(sock, TCP_NO_QUEUE, "select no queue")
            continue
        _set_queue(sock, TCP_NO_QUEUE, "select no queue")
        with _step("TCP_REPAIR_WINDOW"):
            same_window = raw_window == sock.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW,
                                                        _WINDOW.size)
        if (same_window and _ioctl_int(sock, SIOCOUTQ, "SIOCOUTQ") == outq
                and _ioctl_int(sock, SIOCOUTQNSD, "SIOCOUTQNSD") == unsent
                and _ioctl_int(sock, SIOCINQ, "SIOCINQ") == inq):
            window = TcpWindow(*_WINDOW.unpack(raw_window))
            return rcv_seq, recvq, snd_seq, sendq[:outq - unsent], sendq[outq - unsent:], window
    raise TcpRepairError("read queues", errno_mod.EAGAIN,
                         "the queues kept changing while read: is the 4-tuple frozen?")


def dump(sock: socket.socket) -> TcpState:
    """Put ``sock`` in repair mode and read its state.

    The caller must have frozen the 4-tuple's traffic (NetLock) before calling: otherwise
    packets keep changing the queues and sequence numbers while they are read. The socket
    is left in repair mode: either `close_silently` it (hand-over) or `leave_repair` it
    (the hand-over was abandoned and the old owner carries on). Only ESTABLISHED
    connections are supported (a BGP session in any other state is re-established).

    ``sock`` may be a second descriptor of a socket another object owns, e.g. of an
    asyncio transport: ``socket.socket(fileno=os.dup(transport.get_extra_info("socket")
    .fileno()))``. Repair mode belongs to the socket, not to the descriptor, so:

    * pause the transport first (``pause_reading()``, and write nothing more): in repair
      mode the kernel refuses reads (EPERM) and writes (EINVAL), which the transport
      would take for a broken connection; bytes still in the transport's own write buffer
      (``get_write_buffer_size()``) are not in the kernel and not in this dump;
    * close the other descriptors (``transport.abort()``) only after this call has put the
      socket in repair mode: the last close of a socket in repair mode is silent, an
      earlier one would not be if it were the last. Close them all before the new owner
      restores (the 4-tuple must be free for its connect).
    """
    repair_on(sock)
    info = _tcp_info(sock)
    if info["state"] != TCP_ESTABLISHED:
        raise TcpRepairError("state", errno_mod.ENOTCONN,
                             f"TCP state {info['state']}, only ESTABLISHED (1) is supported")
    with _step("addresses"):
        local = sock.getsockname()
        remote = sock.getpeername()
    family = "inet6" if sock.family == socket.AF_INET6 else "inet"
    # in repair mode TCP_MAXSEG reads mss_clamp (the MSS negotiated at SYN time)
    mss = _get_uint(sock, TCP_MAXSEG, "TCP_MAXSEG")
    opts = info["options"]
    timestamp = 0
    if opts & TCPI_OPT_TIMESTAMPS:
        timestamp = _get_uint(sock, TCP_TIMESTAMP, "TCP_TIMESTAMP")
    rcv_seq, recvq, snd_seq, sent, unsent, window = _read_queues(sock)
    with _step("SO_SNDBUF/SO_RCVBUF"):
        bufs = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return TcpState(
        family=family,
        local_addr=local[0],
        local_port=local[1],
        remote_addr=remote[0],
        remote_port=remote[1],
        scope_id=local[3] if family == "inet6" else 0,
        snd_seq=snd_seq,
        rcv_seq=rcv_seq,
        send_queue_sent=sent,
        send_queue_unsent=unsent,
        recv_queue=recvq,
        mss=mss,
        wscale=bool(opts & TCPI_OPT_WSCALE),
        snd_wscale=info["snd_wscale"] if opts & TCPI_OPT_WSCALE else 0,
        rcv_wscale=info["rcv_wscale"] if opts & TCPI_OPT_WSCALE else 0,
        sack=bool(opts & TCPI_OPT_SACK),
        timestamps=bool(opts & TCPI_OPT_TIMESTAMPS),
        timestamp=timestamp,
        window=window,
        extra={"snd_mss": info["snd_mss"], "rcv_mss": info["rcv_mss"],
               "sndbuf": bufs[0], "rcvbuf": bufs[1],
               "sockopts": {**_read_sockopts(sock, family),
                            "reuseaddr": _REUSEADDR.get(sock, 0)}},
    )


def close_silently(sock: socket.socket) -> None:
    """Close without a packet on the wire: repair mode makes close() a silent disconnect
    (no FIN, no RST). If repair mode cannot be entered, the socket is NOT closed and
    TcpRepairError is raised, so the caller never sends a FIN by accident. Other
    descriptors of the same socket (dup) keep it alive; close them too (repair mode is
    the socket's, so their close is silent as well)."""
    repair_on(sock)
    sock.close()


# -- restore ------------------------------------------------------------------------------
def md5sig(remote_addr: str, key: bytes | str | None, scope_id: int = 0) -> bytes:
    """struct tcp_md5sig for ``remote_addr`` (an empty/None key deletes it)."""
    raw = key.encode() if isinstance(key, str) else (key or b"")
    if len(raw) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP-MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} octets")
    ip = ipaddress.ip_address(remote_addr)
    if ip.version == 4:
        sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + ip.packed
    else:
        sa = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + ip.packed
              + struct.pack("=I", scope_id))
    sa = sa.ljust(128, b"\0")
    return sa + struct.pack("=BBHi", 0, 0, len(raw), 0) + raw.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")


def _new_socket(family: int, netns: str | None) -> socket.socket:
    """A TCP socket, created inside ``netns`` (name or path) when given: setns() in a
    short-lived thread (it only moves that thread), or directly when the caller is already
    there; the socket keeps its namespace for life."""
    try:
        return run_in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM))
    except TimeoutError as exc:
        raise TcpRepairError("socket in netns", errno_mod.ETIMEDOUT, str(netns)) from exc
    except OSError as exc:
        raise TcpRepairError("socket in netns", exc.errno or errno_mod.EIO, str(exc)) from exc


def _send_all(sock: socket.socket, data: bytes, what: str) -> None:
    """Write ``data`` in chunks; halve the chunk when the kernel refuses a big one (repair
    writes to the receive queue allocate one linear buffer per call). Bounded."""
    view = memoryview(data)
    off, chunk = 0, min(_SEND_CHUNK, max(len(data), 1))
    for _ in range(len(data) // _CHUNK_MIN + 64):
        if off >= len(data):
            return
        try:
            n = sock.send(view[off:off + chunk])
        except OSError as exc:
            if exc.errno is None:  # socket timeout
                raise TcpRepairError(f"restore {what}", errno_mod.ETIMEDOUT,
                                     f"at byte {off} of {len(data)}") from exc
            if exc.errno in (errno_mod.ENOMEM, errno_mod.ENOBUFS, errno_mod.EAGAIN) \
                    and chunk > _CHUNK_MIN:
                chunk //= 2
                continue
            raise TcpRepairError(f"restore {what}", exc.errno or errno_mod.EIO,
                                 f"at byte {off} of {len(data)}") from exc
        if n <= 0:
            raise TcpRepairError(f"restore {what}", errno_mod.EIO, f"send returned {n}")
        off += n
    if off < len(data):
        raise TcpRepairError(f"restore {what}", errno_mod.EIO,
                             f"gave up at byte {off} of {len(data)}")


def restore(
    state: TcpState,
    *,
    md5_key: bytes | str | None = None,
    netns: str | None = None,
    leave_repair_mode: bool = True,
    _fail_at: str | None = None,
) -> socket.socket:
    """Rebuild ``state`` in a new socket; nothing is sent while the socket is rebuilt.

    Order (each step depends on the one before; see docs/nsr-tcp.md):
    socket → repair on (which also lets bind share the port with any socket, a listener
    included) → TCP-MD5 key → buffer sizes → carried socket
    options (device, TTL/minimum TTL, TOS, NODELAY, ...) → MSS → bind → queue sequence numbers
    (receive, send) → connect (repair: no SYN, straight to ESTABLISHED) → TCP_REPAIR_OPTIONS
    (must precede any data) → TCP_TIMESTAMP → receive queue → sent part of the send queue
    (in repair mode: counted as in flight) → not-yet-sent part (repair mode off for the
    write, so it is queued as new data; the send window is still 0 so it stays queued) →
    TCP_REPAIR_WINDOW → leave repair mode and push the queued bytes (unless
    ``leave_repair_mode`` is False: then call `leave_repair` after unfreezing, so the
    window probe and the queued bytes reach the peer).

    The 4-tuple must be frozen by the caller. ``md5_key`` comes from configuration (a
    kernel never gives a key back). ``netns`` (name under /var/run/netns or a path) creates
    the socket in that namespace. On failure the new socket is closed silently and
    TcpRepairError names the step.
    """
    family = state.sock_family
    sock = _new_socket(family, netns)
    try:
        _restore_into(sock, state, md5_key, _fail_at)
        if leave_repair_mode:
            leave_repair(sock)
    except BaseException:
        with contextlib.suppress(OSError):
            close_silently(sock)
        sock.close()
        raise
    return sock


def _restore_into(sock: socket.socket, st: TcpState, md5_key, fail_at: str | None) -> None:
    def check(step: str) -> None:
        if fail_at == step:  # fault injection for tests
            raise TcpRepairError(step, errno_mod.EIO, "injected failure")

    repair_on(sock)
    # no SO_REUSEADDR here: it would overwrite the "force reuse" that repair mode gives the
    # bind (sk_reuse is one field), and bind would then fail next to a listener on the same
    # port or a connected socket sharing it. The old socket's value is set again when repair
    # mode is left (the kernel clears it then).
    _REUSEADDR[sock] = (st.extra.get("sockopts") or {}).get("reuseaddr", 0)
    if md5_key:
        with _step("TCP_MD5SIG"):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig(st.remote_addr, md5_key))
    _size_buffers(sock, st)
    _apply_sockopts(sock, st.family, st.extra.get("sockopts") or {})
    if TCP_MIN_MSS <= st.mss <= TCP_MAX_USER_MSS:
        # user MSS = the negotiated one, before connect: connect sizes the segments from
        # it (mss_cache). TCP_REPAIR_OPTIONS later only sets the clamp, so without this
        # the new socket would send 536-byte segments (the default clamp at connect)
        _set_int(sock, TCP_MAXSEG, st.mss, "TCP_MAXSEG")
    check("bind")
    local = (st.local_addr, st.local_port)
    remote = (st.remote_addr, st.remote_port)
    if st.family == "inet6":
        local = (st.local_addr, st.local_port, 0, st.scope_id)
        remote = (st.remote_addr, st.remote_port, 0, st.scope_id)
    with _step("bind"):
        sock.bind(local)
    m32 = 0xFFFFFFFF
    sendq_len = len(st.send_queue_sent) + len(st.send_queue_unsent)
    _set_queue(sock, TCP_RECV_QUEUE, "select receive queue")
    _set_int(sock, TCP_QUEUE_SEQ, _s32((st.rcv_seq - len(st.recv_queue)) & m32),
             "set receive queue sequence")
    _set_queue(sock, TCP_SEND_QUEUE, "select send queue")
    _set_int(sock, TCP_QUEUE_SEQ, _s32((st.snd_seq - sendq_len) & m32),
             "set send queue sequence")
    check("connect")
    with _step("connect"):
        sock.connect(remote)
    opts = []
    if st.sack:
        opts.append((TCPOPT_SACK_PERM, 0))
    if st.wscale:
        opts.append((TCPOPT_WINDOW, st.snd_wscale | (st.rcv_wscale << 16)))
    if st.timestamps:
        opts.append((TCPOPT_TIMESTAMP, 0))
    opts.append((TCPOPT_MSS, st.mss))
    with _step("TCP_REPAIR_OPTIONS"):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_OPTIONS,
                        b"".join(_REPAIR_OPT.pack(c, v) for c, v in opts))
    if st.timestamps:
        _set_int(sock, TCP_TIMESTAMP, _s32(st.timestamp & m32), "TCP_TIMESTAMP")
    check("receive queue")
    if st.recv_queue:
        _set_queue(sock, TCP_RECV_QUEUE, "select receive queue")
        _send_all(sock, st.recv_queue, "receive queue")
    if st.send_queue_sent:
        _set_queue(sock, TCP_SEND_QUEUE, "select send queue")
        _send_all(sock, st.send_queue_sent, "send queue (sent part)")
    _set_queue(sock, TCP_NO_QUEUE, "select no queue")
    if st.send_queue_unsent:
        # never seen by the peer: written as ordinary data outside repair mode
        _set_int(sock, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "repair-off for unsent data")
        try:
            sock.setblocking(False)  # never wait: a full buffer is an error, not a hang
            _send_all(sock, st.send_queue_unsent, "send queue (unsent part)")
        finally:
            sock.setblocking(True)
            repair_on(sock)
    check("window")
    if st.window is not None:
        w = st.window
        with _step("TCP_REPAIR_WINDOW"):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW,
                            _WINDOW.pack(w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd,
                                         w.rcv_wup))


def _size_buffers(sock: socket.socket, st: TcpState) -> None:
    """Make room for the queues being restored. A fresh socket starts with the default
    buffer sizes while the old one had grown by autotuning; when the queues would not fit,
    the old socket's size is forced (SO_*BUFFORCE: CAP_NET_ADMIN, which repair needs
    anyway). Forcing a size turns autotuning off for that buffer on the new socket."""
    sendq = len(st.send_queue_sent) + len(st.send_queue_unsent)
    # the kernel charges payload plus skb overhead against the buffer: the send side
    # (many skbs) needs a margin; the receive side about twice its bytes (a smaller size
    # fails the receive-queue write). Known limit: the size can grow hand-over after hand-over
    rq = len(st.recv_queue)
    for q, opt, force, key, want in (
        (sendq, socket.SO_SNDBUF, SO_SNDBUFFORCE, "sndbuf", 3 * sendq + 131072),
        (rq, socket.SO_RCVBUF, SO_RCVBUFFORCE, "rcvbuf", 2 * rq),
    ):
        if not q:
            continue
        with _step(f"size {key}"):
            have = sock.getsockopt(socket.SOL_SOCKET, opt)
            need = max(int(st.extra.get(key, 0)), want)
            if have < need:
                sock.setsockopt(socket.SOL_SOCKET, force, (need + 1) // 2)  # kernel doubles


def _s32(v: int) -> int:
    """setsockopt(int) wants a C int; sequence numbers are u32."""
    return v - (1 << 32) if v >= (1 << 31) else v


__all__ = [
    "TcpRepairError",
    "TcpState",
    "TcpWindow",
    "close_silently",
    "dump",
    "leave_repair",
    "md5sig",
    "push_pending",
    "repair_on",
    "restore",
]
