"""Fakes shared by the speaker and engine-wiring unit tests: a Peer stand-in that
records what the speaker asks of it, and builders for decoded UPDATEs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from appliance.bgp.config import NeighborConfig
from appliance.bgp.family import IPV4_UNICAST, key_to_prefix
from appliance.bgp.packet.capability import Negotiated
from appliance.bgp.packet.pathattrs import PathAttributes
from appliance.bgp.packet.update import Update, UpdateDecoder
from appliance.bgp.speaker import Speaker


@dataclass
class FakeStats:
    sent: dict = field(default_factory=lambda: {"notification": 0})
    received: dict = field(default_factory=lambda: {"notification": 0})
    established_at: float | None = None


class FakePeer:
    """What the speaker and the engine read of a Peer; records what they ask of it."""

    def __init__(self, config: NeighborConfig, router_id: str) -> None:
        self.config = config
        self.state = "Established"
        self.local_address = "10.0.0.1"
        self.stats = FakeStats()
        self.sent: list[bytes] = []
        self.refreshes: list = []
        self.resets: list = []
        self.negotiated = Negotiated(
            families=frozenset({IPV4_UNICAST}), four_octet_as=True, route_refresh=True,
            enhanced_route_refresh=False, extended_message=False, max_message_len=4096,
            hold_time=90, keepalive_interval=30, peer_asn=config.peer_as,
            peer_router_id=router_id, peer_graceful_restart=None,
        )

    async def adopt(self, snap, sock, *, tx_log=None, tx_prefix: bytes = b"") -> None:
        """Speaker.recover_sessions: the session continues (nothing to restore here)."""

    def send_raw(self, msgs: list[bytes]) -> bool:
        self.sent.extend(msgs)
        return True

    def can_send(self) -> bool:
        return True

    def send_route_refresh(self, family, subtype=0) -> bool:
        self.refreshes.append((family, subtype))
        return True

    def reset(self, code, subcode, data=b"", *, idle_hold=None) -> None:
        self.resets.append((code, subcode))
        self.state = "Idle"

    async def shutdown(self, message: str = "") -> None:
        self.state = "Idle"

    def to_dict(self) -> dict:
        return {"neighbor-address": self.config.neighbor_address, "state": self.state, "statistics": {}}

    def received_prefixes(self) -> dict[str, PathAttributes | None]:
        """Replay what we sent through a decoder: prefix -> attrs (None = withdrawn)."""
        dec = UpdateDecoder(four_octet_as=True, ebgp=True)
        state: dict[str, PathAttributes | None] = {}
        for m in self.sent:
            u = dec.decode(m[19:])
            for _fam, keys in u.withdrawn:
                for k in keys:
                    state[key_to_prefix(k, 1)] = None
            for _fam, attrs, keys in u.announced:
                for k in keys:
                    state[key_to_prefix(k, 1)] = attrs
        return state


def update(announced=(), withdrawn=()) -> Update:
    u = Update.__new__(Update)
    u.announced = list(announced)
    u.withdrawn = list(withdrawn)
    u.end_of_rib = None
    u.treat_as_withdraw = False
    u.diagnostics = []
    return u


def attrs(*asns: int, nh: str = "10.0.0.2", **kw) -> PathAttributes:
    return PathAttributes(as_path=((2, asns),), next_hop=bytes(map(int, nh.split("."))), **kw)


def drain(loop: asyncio.AbstractEventLoop, turns: int = 50) -> None:
    for _ in range(turns):
        loop.call_soon(loop.stop)
        loop.run_forever()


def establish(sp: Speaker, cfg: NeighborConfig, router_id: str) -> FakePeer:
    p = FakePeer(cfg, router_id)
    sp.peers[cfg.neighbor_address] = p  # type: ignore[assignment]
    sp.session_established(p)  # type: ignore[arg-type]
    return p
