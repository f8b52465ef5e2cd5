"""Which VixDiskLib backend a run uses, in one place: suites, fixtures and helper processes build it here.

"simulated" is the simulated library (it works against any target that offers the simulator's data plane);
"native" loads VMware's own libvixDiskLib.so.N (or a test double of it) from `libdir` through ctypes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conformance.vixdisklib.api import VixDiskLib

if TYPE_CHECKING:
    from conformance.vixdisklib.mntapi import VixMntApi

BACKENDS = ("simulated", "native")


class BackendError(ValueError):
    """An unknown backend name."""


def make_library(
    build: str,
    *,
    proxy_vm: str | None = None,
    physical_proxy: str | None = None,
    backend: str = "simulated",
    libdir: Path | None = None,
) -> VixDiskLib:
    """A VixDiskLib facade (not yet initialised) that behaves as VDDK `build`, running in `proxy_vm`.

    The native backend loads libvixDiskLib.so.<major of build> from `libdir` (or its lib64/); the proxy is
    then wherever this process runs, so `proxy_vm` and `physical_proxy` do not apply to it.
    """
    if backend == "simulated":
        from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib

        return VixDiskLib(SimulatedVixDiskLib(build, proxy_vm=proxy_vm, physical_proxy=physical_proxy))
    if backend == "native":
        if libdir is None:
            raise BackendError("the native VixDiskLib backend needs --vddk-libdir (the VDDK kit's folder)")
        from conformance.vixdisklib.native.library import NativeVixDiskLib

        major = build.split(".", 1)[0]
        if not major.isdigit():
            raise BackendError(f"VDDK build {build!r} does not start with a major version number")
        return VixDiskLib(NativeVixDiskLib(build, Path(libdir), int(major)))
    raise BackendError(f"unknown VixDiskLib backend {backend!r}: use one of {', '.join(BACKENDS)}")


def make_mntapi(lib: VixDiskLib) -> VixMntApi:
    """The VixMntApi facade (not yet initialised) next to ``lib``, on the same backend."""
    from conformance.vixdisklib.mntapi import VixMntApi
    from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib

    if isinstance(lib.backend, SimulatedVixDiskLib):
        from conformance.vixdisklib.simulated.mntapi import SimulatedVixMntApi

        return VixMntApi(lib, SimulatedVixMntApi(lib.backend))
    from conformance.vixdisklib.native.library import NativeVixDiskLib

    if isinstance(lib.backend, NativeVixDiskLib):
        if lib.backend.mntapi_path is None:
            raise BackendError(f"no libvixMntapi.so.{lib.backend.major} next to {lib.backend.libdir}: VixMntApi is off")
        from conformance.vixdisklib.native.mntapi import NativeVixMntApi

        return VixMntApi(lib, NativeVixMntApi(lib.backend))
    raise BackendError(f"VixMntApi is not available for the {lib.backend.name} backend")
