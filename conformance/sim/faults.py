"""Fault hooks a test can set on one simulator instance (latency, maintenance timing, dropped connections), and
the integrity faults a run plays (``--sim-fault``, names from ``conformance/data/sim_faults.toml``).

Datastore free space is a hook too, but it lives on each datastore's space accounting (see
`Simulator.set_datastore_free_space`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class FaultHooks:
    #: seconds added to every SOAP call
    soap_latency: float = 0.0
    #: seconds added to every disk read or write of the data plane (storage latency)
    disk_latency: float = 0.0
    #: how long a host stays in the "entering maintenance mode" phase
    maintenance_entering_seconds: float = 1.0
    #: the next N HTTP connections are closed without an answer
    drop_connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: integrity faults being played (server side); set once when the simulator starts
    _integrity: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def play(self, names: tuple[str, ...]) -> None:
        """Play these integrity faults (each a known name; unknown ones are a one-line SimFaultError)."""
        from conformance.knowledge.sim_faults import check_faults

        self._integrity = frozenset(check_faults(names))

    def playing(self, name: str) -> bool:
        """True when the integrity fault `name` is being played; a name sim_faults.toml lacks is a bug (KeyError)."""
        from conformance.knowledge.sim_faults import FAULTS

        if name not in FAULTS:
            raise KeyError(f"{name!r} is not a fault of conformance/data/sim_faults.toml")
        return name in self._integrity

    @property
    def integrity(self) -> tuple[str, ...]:
        return tuple(sorted(self._integrity))

    def update(self, **changes: Any) -> None:
        """Set hooks by name; an unknown name or a negative value is a ValueError naming it."""
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown fault hook {key!r}: use one of {', '.join(sorted(names))}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fault hook {key} must be a number >= 0, got {value!r}")
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, type(getattr(self, key))(value))

    def take_dropped_connection(self) -> bool:
        """True (and count one down) when the next connection must be dropped."""
        with self._lock:
            if self.drop_connections > 0:
                self.drop_connections -= 1
                return True
            return False

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
