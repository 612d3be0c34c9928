"""TcpState encoding, nftables rule text and TCP_REPAIR error paths (no namespaces)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from appliance.nsr import netlock, tcp_repair
from appliance.nsr.tcp_repair import TcpRepairError, TcpState, TcpWindow


def _state(**kw) -> TcpState:
    d = dict(family="inet6", local_addr="2001:db8::1", local_port=179,
             remote_addr="2001:db8::2", remote_port=40123, snd_seq=0xFFFFFFF0,
             rcv_seq=12345, send_queue_sent=b"\x00\xffsent", send_queue_unsent=b"unsent",
             recv_queue=bytes(range(256)), mss=1440, wscale=True, snd_wscale=7,
             rcv_wscale=9, sack=True, timestamps=True, timestamp=987654321,
             window=TcpWindow(1, 2, 3, 4, 5), scope_id=0, extra={"sndbuf": 87040})
    d.update(kw)
    return TcpState(**d)


def test_state_round_trip_through_json():
    st = _state()
    again = TcpState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st
    assert again.four_tuple() == ("2001:db8::1", 179, "2001:db8::2", 40123)
    assert again.sock_family == socket.AF_INET6
    assert _state(window=None) == TcpState.from_dict(_state(window=None).to_dict())


def test_state_rejects_unknown_fields_and_family():
    d = _state().to_dict()
    with pytest.raises(ValueError, match="unknown fields"):
        TcpState.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="family"):
        TcpState.from_dict({**d, "family": "unix"})


def test_md5sig_layout():
    raw = tcp_repair.md5sig("10.0.0.2", b"secret")
    assert len(raw) == 128 + 8 + 80
    assert raw[4:8] == socket.inet_aton("10.0.0.2")
    assert raw[130:132] == (6).to_bytes(2, "little") and raw[136:142] == b"secret"
    with pytest.raises(ValueError):
        tcp_repair.md5sig("10.0.0.2", b"x" * 81)


def test_ruleset_text():
    text = netlock.ruleset("fcr_nsr_t", [("10.0.0.1", 179, "10.0.0.2", 40000),
                                         ("2001:db8::1%eth0", 179, "2001:db8::2", 1)])
    assert text.startswith("table inet fcr_nsr_t {")
    assert "elements = { 10.0.0.1 . 179 . 10.0.0.2 . 40000 }" in text
    assert "elements = { 2001:db8::1 . 179 . 2001:db8::2 . 1 }" in text
    assert "type filter hook input priority -300; policy accept;" in text
    assert "ip daddr . tcp dport . ip saddr . tcp sport @frozen4 counter drop" in text
    assert "ip6 saddr . tcp sport . ip6 daddr . tcp dport @frozen6 counter drop" in text
    only4 = netlock.ruleset("fcr_nsr_t", [("10.0.0.1", 179, "10.0.0.2", 40000)])
    assert "frozen6" not in only4 and "ip6" not in only4


def test_ruleset_rejects_bad_input():
    with pytest.raises(ValueError):
        netlock.ruleset("fcr_nsr_t", [])
    with pytest.raises(ValueError):
        netlock.ruleset("bad;name", [("10.0.0.1", 1, "10.0.0.2", 2)])
    with pytest.raises(ValueError):
        netlock.FourTuple("10.0.0.1", 179, "2001:db8::2", 1)
    with pytest.raises(ValueError):
        netlock.FourTuple("10.0.0.1", 0, "10.0.0.2", 1)
    with pytest.raises(ValueError):
        netlock.NetLock([("10.0.0.1", 1, "10.0.0.2", 2)], table="other")


def test_nft_argv_in_namespace():
    assert netlock._nft_argv(None, ["-f", "-"]) == ["nft", "-f", "-"]
    assert netlock._nft_argv("ns1", ["-f", "-"])[:2] in (
        ["nsenter", "--net=/run/netns/ns1"], ["nsenter", "--net=/var/run/netns/ns1"])
    assert netlock._nft_argv("/run/netns/x", ["list", "tables"])[:2] == ["nsenter", "--net=/run/netns/x"]


def test_nft_arguments_as_a_libnftables_buffer():
    assert netlock._cmd_text(["-f", "-"], "add table inet t\n") == "add table inet t\n"
    assert netlock._cmd_text(["delete", "table", "inet", "fcr_nsr_x"], None) == \
        "delete table inet fcr_nsr_x"
    assert netlock._cmd_text(["-j", "list", "ruleset"], None) is None  # options: the program


@pytest.mark.parametrize("backend", ["exec", "auto"])
def test_netlock_error_names_the_action(monkeypatch, backend):
    monkeypatch.setattr(netlock, "BACKEND", backend)
    monkeypatch.setattr(netlock, "_nft_argv", lambda ns, args: ["false"])

    class Failing:  # stands for libnftables and for one of its contexts
        def context(self, netns):
            return self

        def run(self, text, netns=None):
            return 1, "", "Error: injected"

        def close(self):
            pass

    monkeypatch.setattr(netlock, "_lib", lambda: None if backend == "exec" else Failing())
    lock = netlock.NetLock([("10.0.0.1", 1, "10.0.0.2", 2)])
    with pytest.raises(netlock.NetLockError, match="freeze fcr_nsr_"):
        with lock:
            pass
    assert not lock.active
    with pytest.raises(ValueError):
        netlock.unfreeze("not_ours")


def test_run_in_netns_reraises_and_needs_a_namespace():
    assert netlock.run_in_netns(None, lambda: 42) == 42
    with pytest.raises(OSError):
        netlock.run_in_netns("fcrt-no-such-namespace", lambda: 1)
    # the caller's own namespace: no thread, no setns
    assert netlock.run_in_netns("/proc/self/ns/net", threading.get_ident) == threading.get_ident()


def test_dump_of_unconnected_socket_names_the_step():
    with socket.socket() as s:
        with pytest.raises(TcpRepairError) as err:
            tcp_repair.dump(s)
    # without CAP_NET_ADMIN: repair-on/EPERM; with it: the state check
    assert err.value.step in ("repair-on", "state")


def test_error_carries_step_and_errno():
    e = TcpRepairError("bind", 98, "10.0.0.1:179")
    assert e.step == "bind" and e.errno == 98 and "bind" in str(e) and "10.0.0.1:179" in str(e)


@pytest.mark.skipif(os.geteuid() != 0, reason="TCP_REPAIR needs CAP_NET_ADMIN")
def test_loopback_dump_restore_and_injected_failure():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    try:
        s.sendall(b"unread")
        c.sendall(b"hello")
        for _ in range(100):
            if tcp_repair._ioctl_int(c, tcp_repair.SIOCINQ, "inq") == 6:
                break
            socket.socket().close()
        st = tcp_repair.dump(c)
        assert st.recv_queue == b"unread" and st.family == "inet"
        tcp_repair.close_silently(c)
        with pytest.raises(TcpRepairError) as err:
            tcp_repair.restore(st, _fail_at="window")
        assert err.value.step == "window"
        new = tcp_repair.restore(st)
        with new:
            assert new.recv(100) == b"unread"
            new.sendall(b" world")
            s.settimeout(5)
            assert s.recv(100) == b"hello world"
    finally:
        s.close()
        ls.close()


def test_state_carries_socket_options_through_json():
    st = _state(extra={"sockopts": {"nodelay": 1, "hops": 255, "minhops": 254, "device": "vrf1"}})
    again = TcpState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st and again.extra["sockopts"]["device"] == "vrf1"
    again.extra["sockopts"]["hops"] = 1  # a copy: the dict of the first state is untouched
    assert st.extra["sockopts"]["hops"] == 255


@pytest.mark.skipif(os.geteuid() != 0, reason="TCP_REPAIR needs CAP_NET_ADMIN")
def test_dump_of_a_paused_asyncio_transport_through_a_dup():
    """The engine's path: its session is an asyncio transport; it pauses it, dumps a dup of
    the socket's descriptor, closes the dup silently, then aborts the transport (its close
    of the last descriptor is silent: repair mode is the socket's). The options of the old
    socket (NODELAY, TTL, minimum TTL) reach the new one."""
    import asyncio

    async def main() -> None:
        got: list[bytes] = []

        async def serve(reader, writer):
            writer.write(b"unread by the engine")
            await writer.drain()
            got.append(await reader.read(100))
            got.append(await reader.read(100))

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = writer.transport.get_extra_info("socket")
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        raw.setsockopt(socket.IPPROTO_IP, tcp_repair.IP_MINTTL, 254)
        writer.transport.pause_reading()
        writer.write(b"hello")
        await writer.drain()
        for _ in range(200):  # the server's bytes are in our receive queue
            if tcp_repair._ioctl_int(raw, tcp_repair.SIOCINQ, "inq") == 20:
                break
            await asyncio.sleep(0.005)
        dup = socket.socket(fileno=os.dup(raw.fileno()))
        st = tcp_repair.dump(dup)
        assert st.recv_queue == b"unread by the engine"
        assert st.extra["sockopts"]["nodelay"] == 1 and st.extra["sockopts"]["minttl"] == 254
        tcp_repair.close_silently(dup)
        writer.transport.abort()  # the last descriptor: silent, the socket is in repair mode
        await asyncio.sleep(0.05)
        new = tcp_repair.restore(TcpState.from_dict(st.to_dict()))
        try:
            assert new.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert new.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
            assert new.getsockopt(socket.IPPROTO_IP, tcp_repair.IP_MINTTL) == 254
            new.setblocking(False)
            loop = asyncio.get_running_loop()
            assert await asyncio.wait_for(loop.sock_recv(new, 100), 5) == b"unread by the engine"
            await loop.sock_sendall(new, b" world")
            for _ in range(200):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.005)
            assert got == [b"hello", b" world"]  # no EOF, no reset: the session went on
        finally:
            new.close()
            server.close()

    asyncio.run(main())


@pytest.mark.skipif(os.geteuid() != 0, reason="TCP_REPAIR needs CAP_NET_ADMIN")
def test_restore_next_to_a_listener_on_the_same_port():
    """The passive side of a BGP session: local port 179 is also the listener's. Repair
    mode lets the new socket bind next to it (SO_REUSEADDR must not be set in repair mode:
    it overwrites that), and the accepted socket's SO_REUSEADDR is set again on leaving
    repair mode, so a listener can still be bound to the port later."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()  # local port = the listener's
    try:
        c.sendall(b"to the passive side")
        for _ in range(100):
            if tcp_repair._ioctl_int(s, tcp_repair.SIOCINQ, "inq") == 19:
                break
            socket.socket().close()
        st = tcp_repair.dump(s)
        assert st.local_port == ls.getsockname()[1] and st.extra["sockopts"]["reuseaddr"] == 1
        tcp_repair.close_silently(s)
        s = tcp_repair.restore(st, leave_repair_mode=False)  # the listener is still there
        tcp_repair.leave_repair(s)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        s.settimeout(5)
        assert s.recv(100) == b"to the passive side"
        s.sendall(b"ok")
        c.settimeout(5)
        assert c.recv(10) == b"ok"
        ls.close()  # and a new listener can take the port next to the restored session
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", st.local_port))
        ls.listen(1)
    finally:
        for x in (s, c, ls):
            x.close()
