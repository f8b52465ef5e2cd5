"""Which VixDiskLib backend a run uses, in one place: suites, fixtures and helper processes build it here.

Today the only backend is the simulated library (it works against any target that offers the simulator's
data plane); the ctypes backend for VMware's own libvixDiskLib plugs in here.
"""

from __future__ import annotations

from conformance.vixdisklib.api import VixDiskLib

BACKENDS = ("simulated",)


class BackendError(ValueError):
    """An unknown backend name."""


def make_library(
    build: str, *, proxy_vm: str | None = None, physical_proxy: str | None = None, backend: str = "simulated"
) -> VixDiskLib:
    """A VixDiskLib facade (not yet initialised) that behaves as VDDK `build`, running in `proxy_vm`."""
    if backend == "simulated":
        from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib

        return VixDiskLib(SimulatedVixDiskLib(build, proxy_vm=proxy_vm, physical_proxy=physical_proxy))
    raise BackendError(f"unknown VixDiskLib backend {backend!r}: use one of {', '.join(BACKENDS)}")
