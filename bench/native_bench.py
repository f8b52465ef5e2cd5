"""Benchmark of the ctypes VixDiskLib backend: sequential 1 MiB reads of a local flat VMDK through the facade
and the ctypes backend, against a plain Python read (os.preadv into one buffer) of the same bytes from the
same file. Both run warm (page cache) so the number shows the binding's overhead, not the disk's.

Run: python bench/native_bench.py [--vddk-libdir DIR] [--size-mib 256] [--rounds 3]. Without --vddk-libdir
the C test double (tests/native/double) is compiled with gcc; with it, VMware's own library opens the same
local disk (a local connection needs no server).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.types import ConnectParams, OpenFlags

MiB = 1024 * 1024
SOURCE = Path(__file__).resolve().parents[1] / "tests" / "native" / "double" / "vixdisklib_double.c"


def build_double(folder: Path, major: int) -> Path:
    """The test double as <folder>/libvixDiskLib.so.<major>; exits with one line if gcc is missing."""
    if shutil.which("gcc") is None:
        sys.exit("native_bench: gcc is not installed and no --vddk-libdir was given")
    out = folder / f"libvixDiskLib.so.{major}"
    command = ["gcc", "-shared", "-fPIC", "-pthread", "-O2", "-fvisibility=hidden", f"-DVIXDOUBLE_MAJOR={major}"]
    subprocess.run([*command, "-o", str(out), str(SOURCE)], check=True)
    return folder


def make_disk(path: Path, size: int) -> Path:
    """A thick flat disk full of random data (so nothing reads as a hole); returns its extent file."""
    disk = VirtualDiskFile.create(path, size, "thick")
    chunk = os.urandom(8 * MiB)
    for offset in range(0, size, len(chunk)):
        disk.write(offset, chunk[: size - offset])
    disk.close()
    return path.with_name(f"{path.stem}-flat.vmdk")


def through_ctypes(lib: VixDiskLib, path: Path, size: int) -> float:
    with lib.connected(ConnectParams()) as conn, lib.opened(conn, str(path), OpenFlags.READ_ONLY) as disk:
        started = time.perf_counter()
        for sector in range(0, size // 512, 2048):
            lib.read(disk, sector, 2048)
        return time.perf_counter() - started


def plain_python(extent: Path, size: int) -> float:
    buffer = bytearray(MiB)
    fd = os.open(extent, os.O_RDONLY)
    try:
        started = time.perf_counter()
        for offset in range(0, size, MiB):
            os.preadv(fd, [buffer], offset)
            bytes(buffer)  # the facade returns bytes: pay the same copy
        return time.perf_counter() - started
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vddk-libdir", type=Path, help="a VDDK kit (default: build the test double)")
    parser.add_argument("--major", type=int, default=7, choices=(6, 7, 8))
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="native-bench-"))
    try:
        libdir = args.vddk_libdir or build_double(work, args.major)
        size = args.size_mib * MiB
        extent = make_disk(work / "bench.vmdk", size)
        lib = VixDiskLib(NativeVixDiskLib(f"{args.major}.0.0", libdir, args.major))
        lib.init_ex()
        try:
            plain_python(extent, size)  # warm the page cache
            ctypes_best = min(through_ctypes(lib, work / "bench.vmdk", size) for _ in range(args.rounds))
            plain_best = min(plain_python(extent, size) for _ in range(args.rounds))
        finally:
            lib.exit()
        backend = lib.backend
        print(f"library                      {getattr(backend, 'path', '?')}")
        print(f"data                         {args.size_mib} MiB, 1 MiB reads, best of {args.rounds}")
        print(f"ctypes backend (facade)      {args.size_mib / ctypes_best:10.0f} MiB/s")
        print(f"plain Python os.preadv       {args.size_mib / plain_best:10.0f} MiB/s")
        print(f"ratio ctypes / plain         {plain_best / ctypes_best:10.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
