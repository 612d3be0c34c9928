"""Capabilities: codec round trips, errors, and negotiation."""

from __future__ import annotations

import pytest

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.bgp.packet.capability import (
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefresh,
    UnknownCapability,
    decode_optional_parameters,
    encode_optional_parameters,
    negotiate,
)
from appliance.bgp.packet.errors import NotificationError
from appliance.bgp.packet.message import Open

ALL = (
    Multiprotocol(1, 1),
    Multiprotocol(2, 1),
    RouteRefresh(),
    EnhancedRouteRefresh(),
    FourOctetAs(65550),
    GracefulRestart(True, 120, ((1, 1, 0x80), (2, 1, 0))),
    ExtendedMessage(),
    UnknownCapability(73, b"\x01\x02"),
)


def test_round_trip_all():
    assert decode_optional_parameters(encode_optional_parameters(ALL)) == ALL


def test_empty():
    assert encode_optional_parameters(()) == b"\x00"
    assert decode_optional_parameters(b"\x00") == ()


def test_one_capability_per_parameter_is_accepted():
    data = b"\x0c" + b"\x02\x06\x01\x04\x00\x01\x00\x01" + b"\x02\x02\x02\x00"
    assert decode_optional_parameters(data) == (Multiprotocol(1, 1), RouteRefresh())


def test_graceful_restart_flags():
    gr = GracefulRestart(False, 4095, (), notification=True)
    assert gr.value() == b"\x4f\xff"
    assert GracefulRestart.decode(gr.value()) == gr
    d = ALL[5].to_dict()
    assert d["restart-state"] and d["families"][0]["forwarding-preserved"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x04\x02\x02\x01\x03",        # MP with 3 octets  (length matches param)
        b"\x05\x02\x03\x41\x02\x00",    # 4-octet AS with 2 octets
        b"\x04\x02\x02\x02\x01",        # route refresh with a value (truncated)
        b"\x05\x02\x03\x40\x01\x00",    # GR with 1 octet
        b"\x01",                        # length beyond data
    ],
)
def test_malformed(data):
    with pytest.raises(NotificationError):
        decode_optional_parameters(data)


def _open(asn, hold, caps, rid="1.1.1.1"):
    return Open(4, asn, hold, rid, tuple(caps))


def test_negotiate_full():
    local = _open(65001, 90, ALL)
    remote = _open(65550, 30, ALL, "2.2.2.2")
    n = negotiate(local, remote, 30)
    assert n.families == frozenset({IPV4_UNICAST, IPV6_UNICAST})
    assert n.four_octet_as and n.route_refresh and n.enhanced_route_refresh and n.extended_message
    assert n.max_message_len == 65535
    assert n.hold_time == 30 and n.keepalive_interval == 10
    assert n.peer_asn == 65550 and n.peer_router_id == "2.2.2.2"
    assert n.peer_graceful_restart == ALL[5]
    d = n.to_dict()
    assert d["families"] == ["ipv4-unicast", "ipv6-unicast"]


def test_negotiate_minimal_peer():
    n = negotiate(_open(65001, 90, ALL), _open(65002, 240, ()), 30)
    assert n.families == frozenset({IPV4_UNICAST})  # RFC 4760: no MP capability = IPv4 unicast
    assert not (n.four_octet_as or n.route_refresh or n.extended_message)
    assert n.max_message_len == 4096
    assert n.hold_time == 90 and n.keepalive_interval == 30
    assert n.peer_graceful_restart is None


def test_negotiate_family_intersection_and_cisco_rr():
    n = negotiate(
        _open(65001, 90, [Multiprotocol(2, 1), RouteRefresh()]),
        _open(65002, 90, [Multiprotocol(1, 1), Multiprotocol(2, 1), UnknownCapability(128, b"")]),
        30,
    )
    assert n.families == frozenset({IPV6_UNICAST})
    assert n.route_refresh


def test_negotiate_zero_hold_means_no_keepalive():
    n = negotiate(_open(65001, 0, ()), _open(65002, 90, ()), 30)
    assert n.hold_time == 0 and n.keepalive_interval == 0
