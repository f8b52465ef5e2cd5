"""Which VixDiskLib backend a run uses, in one place: suites, fixtures and helper processes build it here.

"simulated" is the simulated library (it works against any target that offers the simulator's data plane);
"native" loads VMware's own libvixDiskLib.so.N (or a test double of it) from `libdir` through ctypes. A libdir
may also hold the harness's simulated libvixDiskLib.so (the C library of conformance/vixdisklib/shim, recognised
by its build stamp: shim/kit.py); the ctypes backend then tells its private agent what to play (build, proxy VM,
known issues fixed, integrity faults), so the same suites run through C against what the simulated backend plays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.input_errors import InputError
from conformance.vixdisklib.api import VixDiskLib

if TYPE_CHECKING:
    from conformance.vixdisklib.mntapi import VixMntApi

BACKENDS = ("simulated", "native")


class BackendError(InputError):
    """An unknown backend name."""


def make_library(
    build: str,
    *,
    proxy_vm: str | None = None,
    physical_proxy: str | None = None,
    backend: str = "simulated",
    libdir: Path | None = None,
    fixed: tuple[str, ...] = (),
    sim_faults: tuple[str, ...] = (),
) -> VixDiskLib:
    """A VixDiskLib facade (not yet initialised) that behaves as VDDK `build`, running in `proxy_vm`.

    `fixed` names known issues the simulated library plays fixed (``--sim-fixed``); VMware's own library cannot
    be told to fix a bug, so the native backend refuses it; likewise `sim_faults` (``--sim-fault``), the
    integrity faults the simulated library plays. Both are allowed when `libdir` holds the simulated
    libvixDiskLib.so, whose agent plays them.

    The native backend loads libvixDiskLib.so.<major of build> from `libdir` (or its lib64/); VMware's runs
    wherever this process runs, so `proxy_vm` can only name that VM (the target's `harness_vm`): callers ask the
    target first (`Target.placement_missing`, the fixtures' `library_spec`), the factory cannot move it. The
    simulated libvixDiskLib.so is told `proxy_vm` (and the rest) through its agent's environment at InitEx.
    """
    if backend == "simulated":
        from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib

        return VixDiskLib(
            SimulatedVixDiskLib(
                build, proxy_vm=proxy_vm, physical_proxy=physical_proxy, fixed=fixed, sim_faults=sim_faults
            )
        )
    if backend == "native":
        from conformance.vixdisklib.shim.kit import agent_environment, simulated_kit

        simulated = simulated_kit(Path(libdir) if libdir is not None else None)
        if fixed and not simulated:
            raise BackendError(native_fixed_refusal(fixed))
        if sim_faults and not simulated:
            raise BackendError(native_faults_refusal(sim_faults))
        if libdir is None:
            raise BackendError("the native VixDiskLib backend needs --vddk-libdir (the VDDK kit's folder)")
        from conformance.vixdisklib.native.library import NativeVixDiskLib

        major = build.split(".", 1)[0]
        if not major.isdigit():
            raise BackendError(f"VDDK build {build!r} does not start with a major version number")
        agent_env = agent_environment(build, proxy_vm, physical_proxy, fixed, sim_faults) if simulated else None
        return VixDiskLib(NativeVixDiskLib(build, Path(libdir), int(major), agent_env=agent_env))
    raise BackendError(f"unknown VixDiskLib backend {backend!r}: use one of {', '.join(BACKENDS)}")


def native_fixed_refusal(fixed: tuple[str, ...]) -> str:
    """The one line refusing --sim-fixed with VMware's library (shared by the run settings and the factory)."""
    return (
        f"--sim-fixed {','.join(fixed)}: VMware's library cannot be told to fix a known issue; "
        "only the simulated backend plays it fixed (fix: drop --sim-fixed)"
    )


def native_faults_refusal(faults: tuple[str, ...]) -> str:
    """The one line refusing --sim-fault with VMware's library or a lab server (neither can be told to lie)."""
    return (
        f"--sim-fault {','.join(faults)}: only the embedded simulator and its library play integrity faults "
        "(fix: drop --sim-fault, or run against the simulator)"
    )


@dataclass(frozen=True)
class LibrarySpec:
    """Everything `make_library` needs, so a helper process builds the very library the run's fixtures build
    (backend, libdir, build, proxy and the known issues played fixed travel together; none of it is secret)."""

    build: str
    backend: str = "simulated"
    libdir: Path | None = None
    proxy_vm: str | None = None
    physical_proxy: str | None = None
    fixed: tuple[str, ...] = ()
    sim_faults: tuple[str, ...] = ()

    def make(self) -> VixDiskLib:
        return make_library(
            self.build,
            proxy_vm=self.proxy_vm,
            physical_proxy=self.physical_proxy,
            backend=self.backend,
            libdir=self.libdir,
            fixed=self.fixed,
            sim_faults=self.sim_faults,
        )

    def to_env(self, prefix: str = "VDDK_LIB_") -> dict[str, str]:
        """The spec as environment variables (empty string = None) for a child process."""
        values = {
            "BUILD": self.build,
            "BACKEND": self.backend,
            "LIBDIR": str(self.libdir) if self.libdir is not None else "",
            "PROXY_VM": self.proxy_vm or "",
            "PHYSICAL_PROXY": self.physical_proxy or "",
            "FIXED": ",".join(self.fixed),
            "SIM_FAULTS": ",".join(self.sim_faults),
        }
        return {prefix + key: value for key, value in values.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "VDDK_LIB_") -> LibrarySpec:
        """The spec `to_env` wrote."""
        libdir = env.get(prefix + "LIBDIR") or None
        fixed = tuple(item for item in (env.get(prefix + "FIXED") or "").split(",") if item)
        sim_faults = tuple(item for item in (env.get(prefix + "SIM_FAULTS") or "").split(",") if item)
        return cls(
            build=env[prefix + "BUILD"],
            backend=env.get(prefix + "BACKEND") or "simulated",
            libdir=Path(libdir) if libdir else None,
            proxy_vm=env.get(prefix + "PROXY_VM") or None,
            physical_proxy=env.get(prefix + "PHYSICAL_PROXY") or None,
            fixed=fixed,
            sim_faults=sim_faults,
        )


def make_mntapi(lib: VixDiskLib) -> VixMntApi:
    """The VixMntApi facade (not yet initialised) next to ``lib``, on the same backend."""
    from conformance.vixdisklib.mntapi import VixMntApi

    if lib.backend.name == "simulated":  # imported only then: a native run never loads the simulated library
        from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
        from conformance.vixdisklib.simulated.mntapi import SimulatedVixMntApi

        assert isinstance(lib.backend, SimulatedVixDiskLib)
        return VixMntApi(lib, SimulatedVixMntApi(lib.backend))
    from conformance.vixdisklib.native.library import NativeVixDiskLib

    if isinstance(lib.backend, NativeVixDiskLib):
        if lib.backend.mntapi_path is None:
            raise BackendError(f"no libvixMntapi.so.{lib.backend.major} next to {lib.backend.libdir}: VixMntApi is off")
        from conformance.vixdisklib.native.mntapi import NativeVixMntApi

        return VixMntApi(lib, NativeVixMntApi(lib.backend))
    raise BackendError(f"VixMntApi is not available for the {lib.backend.name} backend")
