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


N2 = "/fcr-bgp:bgp/neighbors/neighbor[neighbor-address='10.0.0.2']"

# What the YANG model (libyang) rejects, with the data path it names.
MODEL_CASES = [
    ({"bgp": {}}, "/", "namespace-qualified"),
    ({"fcr-bgp:bgp": {"global": {"router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "Mandatory"),
    ({"fcr-bgp:bgp": {"global": {"as": 0, "router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "range"),
    ({"fcr-bgp:bgp": {"global": {"as": 1, "router-id": "::1"}}}, "/fcr-bgp:bgp/global/router-id", "pattern"),
    ({"fcr-bgp:bgp": {"global": {"as": "x", "router-id": "1.1.1.1"}}}, "/fcr-bgp:bgp/global/as", "uint32"),
    (with_neighbor(**{"timers": {"hold-time": 2}}), N2 + "/timers/hold-time", "range"),
    (with_neighbor(**{"timers": {"hold-tme": 3}}), N2 + "/timers", '"hold-tme" not found'),
    (with_neighbor(**{"neighbor-address": "10.0.0.999"}), "/fcr-bgp:bgp/neighbors/neighbor", "10.0.0.999"),
    (with_neighbor(**{"afi-safis": {"afi-safi": [{"afi-safi-name": "l2vpn-evpn"}]}}), "afi-safi-name", "l2vpn-evpn"),
    (with_neighbor(**{"transport": {"local-address": "2001:db8::1"}}), N2 + "/transport/local-address", "same family"),
    (with_neighbor(**{"route-reflector": {"route-reflector-client": True}}), "route-reflector-client", "iBGP"),
    (with_neighbor(**{"passive": True}), N2, '"passive" not found'),
]


@pytest.mark.parametrize(("doc", "path", "words"), MODEL_CASES)
def test_model_rejections_name_the_path(doc, path, words):
    with pytest.raises(ConfigError) as ei:
        parse(doc)
    assert path in ei.value.path
    assert words in ei.value.message


# The mapper checks what it reads on its own too (defence in depth, and the only check
# for a leaf the model has but the engine does not act on yet).
MAPPER_CASES = [
    ({"bgp": {}}, "/bgp", "module-qualified"),
    ({"fcr-bgp:bgp": {"global": {"as": 1, "router-id": "0.0.0.0"}}}, "/fcr-bgp:bgp/global/router-id", "0.0.0.0"),
    (with_neighbor(**{"timers": {"hold-time": 2}}), N2 + "/timers/hold-time", "at least 3"),
    (with_neighbor(**{"timers": {"hold-tme": 3}}), N2 + "/timers/hold-tme", "unknown member"),
    (with_neighbor(**{"afi-safis": {"afi-safi": [{"afi-safi-name": "l2vpn-evpn"}]}}), "afi-safi-name", "unknown address family"),
    (with_neighbor(**{"route-reflector": {"route-reflector-client": True}}), "route-reflector-client", "iBGP"),
]


@pytest.mark.parametrize(("doc", "path", "words"), MAPPER_CASES)
def test_mapper_rejections_name_the_path(doc, path, words):
    with pytest.raises(ConfigError) as ei:
        parse(doc, model=False)
    assert path in ei.value.path
    assert words in ei.value.message


def test_duplicate_neighbor_rejected():
    doc = with_neighbor()
    doc["fcr-bgp:bgp"]["neighbors"]["neighbor"].append({"neighbor-address": "10.0.0.2", "peer-as": 1})
    with pytest.raises(ConfigError, match="Duplicate"):
        parse(doc)
    with pytest.raises(ConfigError, match="duplicate"):
        parse(doc, model=False)


def test_peer_group_inheritance():
    doc = with_neighbor(**{"peer-group": "edge", "timers": {"hold-time": 60, "keepalive-interval": 20}})
    del doc["fcr-bgp:bgp"]["neighbors"]["neighbor"][0]["peer-as"]
    doc["fcr-bgp:bgp"]["peer-groups"] = {"peer-group": [{
        "peer-group-name": "edge", "peer-as": 65009,
        "timers": {"hold-time": 9, "keepalive-interval": 3},
        "transport": {"passive-mode": True},
    }]}
    n = parse(doc).bgp.neighbors[0]
    assert n.peer_as == 65009 and n.passive_mode      # from the group
    assert n.hold_time == 60 and n.keepalive_interval == 20  # neighbor wins
    assert n.connect_retry == 30  # neither sets it: the default


def test_listen_disabled_and_bfd():
    doc = with_neighbor(**{"bfd": {"enabled": True, "desired-min-tx-interval": 50000}})
    doc["fcr-bgp:bgp"]["global"]["listen"] = {"enabled": False}
    cfg = parse(doc).bgp
    assert cfg.global_.listen_addresses == ()
    assert cfg.neighbors[0].bfd.enabled and cfg.neighbors[0].bfd.desired_min_tx_interval == 50000


def test_bad_json_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"fcr-bgp:bgp": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_file(p)
