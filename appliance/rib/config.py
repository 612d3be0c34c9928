"""``fcr-routing:routing``: RIB and FIB settings (docs/configuration.md, "Shapes agreed")."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DISTANCES = {"connected": 0, "static": 1, "ebgp": 20, "ibgp": 200, "controller": 5}


class RoutingConfigError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class RoutingConfig:
    table: int = 254
    protocol: int = 196
    fib_enabled: bool = True
    maximum_paths: int = 8
    distances: dict = field(default_factory=lambda: dict(DEFAULT_DISTANCES))
    kernel_metric: int = 20  # RTA_PRIORITY of our kernel routes (not in the model yet)

    @classmethod
    def from_json(cls, data: dict | None) -> RoutingConfig:
        base = "/fcr-routing:routing"
        if not data:
            return cls()
        r = data.get("fcr-routing:routing", data)
        if not isinstance(r, dict):
            raise RoutingConfigError(base, "expected an object")

        def num(path, value, lo, hi):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise RoutingConfigError(path, f"expected an integer {lo}..{hi}")
            return value

        fib = r.get("fib", {})
        table = num(f"{base}/fib/table", fib.get("table", 254), 1, 0xFFFFFFFF)
        if table in (253, 255):
            raise RoutingConfigError(f"{base}/fib/table", "table 253/255 are the kernel's")
        proto = num(f"{base}/fib/protocol", fib.get("protocol", 196), 5, 255)
        enabled = fib.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RoutingConfigError(f"{base}/fib/enabled", "expected a boolean")
        mp = num(f"{base}/ecmp/maximum-paths", r.get("ecmp", {}).get("maximum-paths", 8), 1, 64)
        dist = dict(DEFAULT_DISTANCES)
        for k, v in r.get("administrative-distance", {}).items():
            if k not in dist:
                raise RoutingConfigError(f"{base}/administrative-distance/{k}", "unknown origin")
            dist[k] = num(f"{base}/administrative-distance/{k}", v, 0, 255)
        return cls(table, proto, enabled, mp, dist)
