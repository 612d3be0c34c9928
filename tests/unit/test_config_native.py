"""The startup JSON mapping: every accepted shape and every rejection names its path."""

import json

import pytest

from appliance.bgp.family import IPV4_UNICAST, IPV6_UNICAST
from appliance.config.native import ConfigError, load_file, parse

BASE = {"fcr-bgp:bgp": {"global": {"as": 65001, "router-id": "192.0.2.1"}}}


def with_neighbor(**fields):
    doc = json.loads(json.dumps(BASE))
    n = {"neighbor-address": "10.0.0.2", "peer-as": 65002}
    n.update(fields)
    doc["fcr-bgp:bgp"]["neighbors"] = {"neighbor": [n]}
    return doc


def test_example_config_loads():
    cfg = load_file("docs/examples/fcrd.json")
    assert cfg.bgp is not None
    assert cfg.bgp.global_.asn == 65001
    n = cfg.bgp.neighbors[0]
    assert n.passive_mode and n.local_address == "127.0.0.1"
    assert [f.family for f in n.families] == [IPV4_UNICAST, IPV6_UNICAST]
    assert cfg.bgp.networks == ("198.51.100.0/24",)


def test_defaults():
    n = parse(with_neighbor()).bgp.neighbors[0]
    assert (n.hold_time, n.keepalive_interval, n.connect_retry) == (90, 30, 30)
    assert [f.family for f in n.families] == [IPV4_UNICAST]
    assert n.four_octet_as and n.route_refresh and not n.passive_mode


def test_full_neighbor():
    n = parse(
        with_neighbor(
            **{
                "local-as": 65010,
                "timers": {"hold-time": 9, "keepalive-interval": 3, "connect-retry": 2},
                "transport": {"local-address": "10.0.0.1", "passive-mode": True, "tcp-md5-key": "s3cret"},
                "ebgp-multihop": {"enabled": True, "multihop-ttl": 4},
                "capabilities": {"four-octet-as": False},
                "afi-safis": {"afi-safi": [{"afi-safi-name": "ipv6-unicast", "prefix-limit": {"max-prefixes": 10, "warning-only": True}}]},
            }
        )
    ).bgp.neighbors[0]
    assert n.local_as == 65010 and n.hold_time == 9 and n.ebgp_multihop_ttl == 4
    assert n.tcp_md5_key == "s3cret" and not n.four_octet_as
    assert n.families[0].family == IPV6_UNICAST and n.families[0].prefix_limit.max_prefixes == 10


@pytest.mark.parametrize(
    ("doc", "path", "words"),
    [
        ({"bgp": {}}, "/bgp", "module-qualified"),
        ({"fcr-bgp:bgp": {"global": {"router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "mandatory"),
        ({"fcr-bgp:bgp": {"global": {"as": 0, "router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "out of range"),
        ({"fcr-bgp:bgp": {"global": {"as": 1, "router-id": "::1"}}}, "/fcr-bgp:bgp/global/router-id", "dotted-quad"),
        ({"fcr-bgp:bgp": {"global": {"as": "x", "router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "integer"),
        (with_neighbor(**{"timers": {"hold-time": 2}}), "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='10.0.0.2']/timers/hold-time", "at least 3"),
        (with_neighbor(**{"timers": {"hold-tme": 3}}), "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='10.0.0.2']/timers/hold-tme", "unknown member"),
        (with_neighbor(**{"neighbor-address": "10.0.0.999"}), "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='10.0.0.999']/neighbor-address", "not an IP"),
        (with_neighbor(**{"afi-safis": {"afi-safi": [{"afi-safi-name": "l2vpn-evpn"}]}}), "afi-safi-name", "unknown address family"),
        (with_neighbor(**{"transport": {"local-address": "2001:db8::1"}}), "transport/local-address", "different IP versions"),
        (with_neighbor(**{"route-reflector": {"route-reflector-client": True}}), "route-reflector-client", "iBGP"),
        (with_neighbor(**{"passive": True}), "neighbor[neighbor-address='10.0.0.2']/passive", "unknown member"),
    ],
)
def test_rejections_name_the_path(doc, path, words):
    with pytest.raises(ConfigError) as ei:
        parse(doc)
    assert path in ei.value.path
    assert words in ei.value.message


def test_duplicate_neighbor_rejected():
    doc = with_neighbor()
    doc["fcr-bgp:bgp"]["neighbors"]["neighbor"].append({"neighbor-address": "10.0.0.2", "peer-as": 1})
    with pytest.raises(ConfigError, match="duplicate"):
        parse(doc)


def test_bad_json_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"fcr-bgp:bgp": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_file(p)
