"""BGP configuration as the engine consumes it: plain, validated, immutable data.

Built from the RFC 7951 JSON of the native model by ``appliance.config.native``;
the engine never reads JSON itself. Field names follow the YANG leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .family import IPV4_UNICAST, AfiSafi


@dataclass(frozen=True, slots=True)
class PrefixLimit:
    max_prefixes: int
    warning_only: bool = False
    restart_timer: int = 0          # seconds; 0 = stay down until cleared
    shutdown_threshold_pct: int = 75  # warn at this share of the limit


@dataclass(frozen=True, slots=True)
class FamilyConfig:
    family: AfiSafi
    enabled: bool = True
    prefix_limit: PrefixLimit | None = None
    import_policy: tuple[str, ...] = ()
    export_policy: tuple[str, ...] = ()
    default_import_accept: bool = True     # what happens when no policy statement decides
    default_export_accept: bool = True


@dataclass(frozen=True, slots=True)
class BfdTracking:
    """BFD for a neighbor: a BFD session down takes the BGP session down at once."""

    enabled: bool = False
    detection_multiplier: int = 3
    desired_min_tx_interval: int = 300_000   # µs
    required_min_rx_interval: int = 300_000  # µs


@dataclass(frozen=True, slots=True)
class Redistribute:
    """Routes of another protocol (connected, static, controller) exported into BGP."""

    family: AfiSafi
    protocol: str
    policy: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GracefulRestartConfig:
    enabled: bool = True
    restart_time: int = 120        # advertised in the capability (seconds)
    stale_routes_time: int = 360   # helper mode: how long we keep a restarting peer's routes


@dataclass(frozen=True, slots=True)
class NeighborConfig:
    neighbor_address: str                  # IPv4 or IPv6 literal
    peer_as: int
    enabled: bool = True
    description: str = ""
    local_as: int | None = None            # None: the global AS
    local_address: str | None = None       # update-source
    passive_mode: bool = False             # never connect out
    port: int = 179                        # remote port (tests, benchmarks)
    hold_time: int = 90
    keepalive_interval: int = 30
    connect_retry: int = 30                # initial ConnectRetry; backs off to connect_retry_max
    connect_retry_max: int = 120
    minimum_advertisement_interval: float = 0.0
    ebgp_multihop_ttl: int | None = None   # None: TTL 1 for eBGP (directly connected)
    ttl_security_hops: int | None = None   # GTSM (RFC 5082): expect TTL >= 255 - hops + 1
    tcp_md5_key: str | None = None
    route_reflector_client: bool = False
    next_hop_self: bool = False
    remove_private_as: bool = False
    four_octet_as: bool = True             # advertise the capability (disable to act as a 2-octet speaker)
    route_refresh: bool = True
    enhanced_route_refresh: bool = True
    extended_message: bool = True
    graceful_restart: GracefulRestartConfig = field(default_factory=GracefulRestartConfig)
    bfd: BfdTracking = field(default_factory=BfdTracking)
    families: tuple[FamilyConfig, ...] = (FamilyConfig(IPV4_UNICAST),)

    def family(self, fam: AfiSafi) -> FamilyConfig | None:
        for f in self.families:
            if f.family == fam and f.enabled:
                return f
        return None


@dataclass(frozen=True, slots=True)
class BgpGlobalConfig:
    asn: int
    router_id: str
    listen_addresses: tuple[str, ...] = ("0.0.0.0", "::")
    listen_port: int = 179
    cluster_id: str | None = None          # None: router-id
    always_compare_med: bool = False
    deterministic_med: bool = False
    graceful_restart: GracefulRestartConfig = field(default_factory=GracefulRestartConfig)
    redistribute: tuple[Redistribute, ...] = ()


@dataclass(frozen=True, slots=True)
class BgpConfig:
    global_: BgpGlobalConfig
    neighbors: tuple[NeighborConfig, ...] = ()
    networks: tuple[str, ...] = ()         # locally originated prefixes ("network" statements)
    network_policies: tuple[tuple[str, str], ...] = ()  # (prefix, policy) for networks with one
