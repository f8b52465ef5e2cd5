"""Fixtures for the ctypes backend: the C test double compiled once per session into VDDK-kit-shaped
folders, disks in the simulator's on-disk format, and libraries over the double (Exit at teardown).

Kits (each a --vddk-libdir):
  flat/         libvixDiskLib.so.6, .so.7, .so.8 directly in the folder (how nbdkit's tests place a stub)
  kit/lib64/    the same three, VMware's layout, plus libvixMntapi.so.7 (the VixMntApi double)
  v65/          a 6.5-era .so.6: 80-byte ConnectParams, no QueryAllocatedBlocks/FreeBlockList/AllocateConnectParams
Libraries that lack functions (each a .so.7; the loader must take the optional ones, refuse the required):
  no-wait/      without Wait alone (ReadAsync/WriteAsync present but nothing to wait with)
  no-async/     without ReadAsync, WriteAsync and Wait
  lean/         without ListTransportModes, Attach, PrepareForAccess, EndAccess and Cleanup
  core/         with only the twelve required functions
  no-io/        without Read and Write (both required)
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.types import ConnectParams, UidCredentials

SOURCE = Path(__file__).with_name("double") / "vixdisklib_double.c"
MNTAPI_SOURCE = SOURCE.with_name("vixmntapi_double.c")
MAJORS = (6, 7, 8)
BUILDS = {6: "6.7.3", 7: "7.0.3", 8: "8.0.1"}
PASSWORD = "Very-Secret-pw-4711"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Kits:
    flat: Path
    lib64: Path
    v65: Path
    no_wait: Path
    no_async: Path
    lean: Path
    core: Path
    no_io: Path


#: what each kit of a library lacking functions is built without (VIXDOUBLE_OMIT_... switches of the double)
LACKING = {
    "no_wait": ("VIXDOUBLE_OMIT_WAIT",),
    "no_async": ("VIXDOUBLE_OMIT_ASYNC",),
    "lean": ("VIXDOUBLE_OMIT_LIST_MODES", "VIXDOUBLE_OMIT_ATTACH", "VIXDOUBLE_OMIT_ACCESS", "VIXDOUBLE_OMIT_CLEANUP"),
    "core": ("VIXDOUBLE_CORE_ONLY",),
    "no_io": ("VIXDOUBLE_OMIT_IO",),
}


def _compile(out: Path, *defines: str, source: Path = SOURCE) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "gcc", "-shared", "-fPIC", "-pthread", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden",
        f"-Wl,-soname,{out.name}", *(f"-D{d}" for d in defines), "-o", str(out), str(source),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        pytest.fail(f"compiling the VixDiskLib double failed: {result.stderr.strip()}", pytrace=False)


@pytest.fixture(scope="session")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Kits:
    """The double built as every kit above (skipped only when there is no gcc)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the VixDiskLib test double cannot be built")
    root = tmp_path_factory.mktemp("vddk-kits")
    lacking = {name: root / name.replace("_", "-") for name in LACKING}
    kits = Kits(flat=root / "flat", lib64=root / "kit", v65=root / "v65", **lacking)
    for major in MAJORS:
        built = kits.flat / f"libvixDiskLib.so.{major}"
        _compile(built, f"VIXDOUBLE_MAJOR={major}")
        (kits.lib64 / "lib64").mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, kits.lib64 / "lib64" / built.name)  # a copy: dlopen would share one inode
    _compile(kits.lib64 / "lib64" / "libvixMntapi.so.7", source=MNTAPI_SOURCE)
    _compile(kits.v65 / "libvixDiskLib.so.6", "VIXDOUBLE_MAJOR=6", "VIXDOUBLE_V65")
    for name, switches in LACKING.items():
        _compile(getattr(kits, name) / "libvixDiskLib.so.7", "VIXDOUBLE_MAJOR=7", *switches)
    return kits


def double_state(lib: VixDiskLib | NativeVixDiskLib) -> dict[str, str]:
    """What the double saw and holds (its VixDouble_State test hook), as key=value pairs."""
    backend = lib.backend if isinstance(lib, VixDiskLib) else lib
    assert isinstance(backend, NativeVixDiskLib)
    buffer = ctypes.create_string_buffer(2048)
    backend.loaded.cdll.VixDouble_State(buffer, ctypes.c_size_t(len(buffer)))
    return dict(item.split("=", 1) for item in buffer.value.decode().split() if "=" in item)


MakeNative = Callable[..., VixDiskLib]


@pytest.fixture
def vddk_conf(tmp_path: Path) -> Path:
    path = tmp_path / "vddk.conf"
    path.write_text(render_config({"tmpDirectory": str(tmp_path / "vddk-tmp")}))
    return path


@pytest.fixture
def make_native(kits: Kits, vddk_conf: Path) -> Iterator[MakeNative]:
    """`make_native(major, kit=kits.flat, init=True)`: a facade over the double; Exit at teardown."""
    made: list[VixDiskLib] = []

    def make(major: int = 7, kit: Path | None = None, init: bool = True) -> VixDiskLib:
        lib = VixDiskLib(NativeVixDiskLib(BUILDS[major], kit or kits.flat, major))
        if init:
            lib.init_ex(vddk_conf)
            made.append(lib)
        return lib

    yield make
    for lib in made:
        if lib.initialised:
            lib.exit()


@dataclass(frozen=True)
class DiskSet:
    """Disks in the simulator's format under a datastore root: `[ds1] vm/base.vmdk` (flat, 8 MiB, data at
    1 MiB and 5 MiB) and `[ds1] vm/base-000001.vmdk` (a sparse delta over it, data at 2 MiB)."""

    root: Path
    base: str
    delta: str
    contents: bytes  # what the delta chain reads as, whole disk

    def host_path(self, ds_path: str) -> Path:
        name, rest = ds_path[1:].split("] ", 1)
        return self.root / name / rest


@pytest.fixture
def disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DiskSet:
    root = tmp_path / "datastores"
    folder = root / "ds1" / "vm"
    folder.mkdir(parents=True)
    image = bytearray(8 * MiB)
    base = VirtualDiskFile.create(folder / "base.vmdk", 8 * MiB)
    for offset, fill in ((1 * MiB, 0x11), (5 * MiB, 0x55)):
        data = bytes([fill]) * (64 * 1024) + bytes(range(256)) * 256
        base.write(offset, data)
        image[offset : offset + len(data)] = data
    delta = VirtualDiskFile.create_delta(folder / "base-000001.vmdk", base)
    data = b"delta!" * 20000  # 120000 bytes: not grain aligned, so copy-on-write is exercised
    delta.write(2 * MiB + 512, data)
    image[2 * MiB + 512 : 2 * MiB + 512 + len(data)] = data
    delta.close()
    base.close()
    monkeypatch.setenv("VIXDOUBLE_DISK_ROOT", str(root))
    return DiskSet(root, "[ds1] vm/base.vmdk", "[ds1] vm/base-000001.vmdk", bytes(image))


def remote_params(vm: str = "vm-42") -> ConnectParams:
    return ConnectParams(
        server_name="vcenter.example.test",
        credentials=UidCredentials("administrator@vsphere.local", PASSWORD),
        thumbprint="AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD",
        port=8443,
        nfc_host_port=9902,
    ).with_vm(vm)
