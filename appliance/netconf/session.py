"""One NETCONF session on an SSH channel: hello exchange, framing (the `netconf`
library's framing transport, with its end-of-file and size handling fixed), a reader
that hands each message to the server's event loop, and a writer thread so that a slow
client never blocks the loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from netconf.base import NetconfFramingTransport
from netconf.error import ChannelClosed, FramingError

from appliance.netconf.library import BASE_10, BASE_11
from appliance.netconf.xmlutil import BASE_NS, XmlError, nc, parse

if TYPE_CHECKING:
    from appliance.netconf.server import NetconfServer

log = logging.getLogger("fcr.netconf")

XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>'
# Both spellings of base:1.0 that clients send in their <hello>.
BASE_10_ALIASES = frozenset({BASE_10, BASE_NS})
MAX_MESSAGE = 64 * 1024 * 1024
HELLO_TIMEOUT = 60.0


class MessageTooBig(FramingError):
    pass


class _Stream:
    """The channel as the framing transport sees it: EOF raises, sizes are bounded."""

    def __init__(self, channel: Any, limit: int):
        self.channel = channel
        self.limit = limit
        self.pending = 0

    def recv(self, n: int) -> bytes:
        data = self.channel.recv(n)
        if not data:
            raise ChannelClosed(self)
        self.pending += len(data)
        if self.pending > self.limit:
            raise MessageTooBig(f"message over {self.limit} octets")
        return data

    def sendall(self, data: bytes) -> None:
        self.channel.sendall(data)

    def close(self) -> None:
        self.channel.close()

    def is_active(self) -> bool:
        return not self.channel.closed

    def get_transport(self):
        return self.channel.get_transport()


class Framing(NetconfFramingTransport):
    """RFC 6242 framing from the library, with fixes: EOF ends the session instead of a
    busy loop, messages are bounded, nothing is padded after a message, and the client's
    <hello> is accepted in either framing."""

    def __init__(self, channel: Any, limit: int = MAX_MESSAGE):
        self.limited = _Stream(channel, limit)
        super().__init__(self.limited, 16 * 1024, False)

    def receive_pdu(self, new_framing: bool) -> str:
        self.limited.pending = len(self.rbuffer)
        return super().receive_pdu(new_framing)

    def _receive_10(self) -> str:
        searchfrom = 0
        while True:
            eom = self.rbuffer.find(b"]]>]]>", searchfrom)
            if eom != -1:
                break
            searchfrom = max(0, len(self.rbuffer) - 5)
            self.rbuffer += self.stream.recv(self.max_chunk)
        msg = self.rbuffer[:eom]
        self.rbuffer = self.rbuffer[eom + 6:]
        return msg.decode("utf-8")

    def receive_hello(self) -> tuple[str, bool]:
        """The client's <hello> and whether it came chunked."""
        self.limited.pending = len(self.rbuffer)
        while len(self.rbuffer.lstrip()) == 0 or (self.rbuffer[:1] == b"\n" and len(self.rbuffer) < 2):
            self.rbuffer += self.stream.recv(self.max_chunk)
        if self.rbuffer[:2] == b"\n#":
            return self._receive_11(), True
        return self._receive_10(), False

    def send_pdu(self, msg: str, new_framing: bool) -> None:
        data = msg.encode("utf-8")
        if new_framing:
            data = b"\n#%d\n" % len(data) + data + b"\n##\n"
        else:
            data += b"]]>]]>"
        self.stream.sendall(data)


_CLOSE = object()


class Session:
    """Server side of one NETCONF session."""

    def __init__(self, server: NetconfServer, channel: Any, user: str, source_host: str | None):
        self.server = server
        self.channel = channel
        self.user = user
        self.source_host = source_host
        self.sid: int = 0
        self.framing = Framing(channel, server.max_message)
        self.base11 = False
        self.client_capabilities: list[str] = []
        self.login_time = datetime.now(UTC)
        self.in_rpcs = 0
        self.in_bad_rpcs = 0
        self.out_rpc_errors = 0
        self.out_notifications = 0
        self.subscription: Any = None  # (filter spec) when create-subscription succeeded
        self.termination = "dropped"
        self.killed_by: int | None = None
        self.closing = False
        self._out: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="netconf-writer", daemon=True)
        self._seq = itertools.count(1)

    # -- output ------------------------------------------------------------------------
    def send(self, xml: str) -> None:
        """Queue one message (thread-safe, never blocks)."""
        self._out.put(xml)

    def _write_loop(self) -> None:
        while True:
            item = self._out.get()
            if item is _CLOSE:
                return
            try:
                self.framing.send_pdu(XML_DECL + item, self.base11)
            except Exception as exc:  # noqa: BLE001 - the peer went away
                log.debug("netconf send failed sid=%s: %r", self.sid, exc)
                self.abort()
                # drain so that nobody waits on a dead channel
                while self._out.get() is not _CLOSE:
                    pass
                return

    def abort(self) -> None:
        """Close the channel now (kill-session, server stop, transport failure)."""
        self.closing = True
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001
            pass

    # -- the session -------------------------------------------------------------------
    def run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in the connection's thread until the session ends."""
        try:
            self.sid = asyncio.run_coroutine_threadsafe(self.server._open(self), loop).result()
        except Exception as exc:  # noqa: BLE001
            log.warning("netconf session refused for %s: %r", self.user, exc)
            self.abort()
            return
        try:
            # the server's <hello> always goes end-of-message framed, before anything else
            self.framing.send_pdu(XML_DECL + self.server._hello_xml(self.sid), False)
            self._writer.start()
            if not self._hello():
                self.server.stats["in-bad-hellos"] += 1
                self.termination = "bad-hello"
                return
            asyncio.run_coroutine_threadsafe(self.server._started(self), loop).result()
            while True:
                try:
                    msg = self.framing.receive_pdu(self.base11)
                except MessageTooBig:
                    log.warning("netconf sid=%s: message too big, closing", self.sid)
                    self.termination = "other"
                    return
                except FramingError as exc:
                    log.warning("netconf sid=%s: framing error %s, closing", self.sid, exc)
                    self.termination = "other"
                    return
                except (ChannelClosed, EOFError, OSError, UnicodeDecodeError) as exc:
                    if isinstance(exc, UnicodeDecodeError):
                        self.termination = "other"
                    return
                if self.closing:
                    return
                fut = asyncio.run_coroutine_threadsafe(self.server.dispatcher.handle(self, msg), loop)
                if fut.result() == "close":
                    return
        except Exception as exc:  # noqa: BLE001
            if not self.closing:
                log.warning("netconf sid=%s ended: %r", self.sid, exc)
                self.termination = "other"
        finally:
            self._out.put(_CLOSE)
            if self._writer.is_alive():
                self._writer.join(timeout=10)
            self.abort()
            try:
                asyncio.run_coroutine_threadsafe(self.server._ended(self), loop).result(timeout=30)
            except Exception as exc:  # noqa: BLE001
                log.warning("netconf sid=%s cleanup: %r", self.sid, exc)

    def _hello(self) -> bool:
        self.channel.settimeout(HELLO_TIMEOUT)
        try:
            text, chunked = self.framing.receive_hello()
        except Exception:  # noqa: BLE001 - timeout, EOF, framing
            return False
        finally:
            self.channel.settimeout(None)
        try:
            root = parse(text.strip())
        except XmlError:
            return False
        if root.tag != nc("hello") or root.find(nc("session-id")) is not None:
            return False
        caps_el = root.find(nc("capabilities"))
        if caps_el is None:
            return False
        caps = [(c.text or "").strip() for c in caps_el.findall(nc("capability"))]
        self.client_capabilities = caps
        if BASE_11 in caps:
            self.base11 = True
        elif not BASE_10_ALIASES.intersection(caps):
            return False
        if chunked and not self.base11:
            return False
        return True

    def event_time(self) -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    def __repr__(self) -> str:
        return f"Session(sid={self.sid}, user={self.user!r})"
