"""Compile the simulated/tracing libvixDiskLib.so.6/.7/.8 from the C sources in `c/` with the system compiler.

Why compiled here rather than shipped: the library must be built on the machine that runs it (no binary in the
repository), and it bakes in the Python that runs its agent (this interpreter) and the folder the harness is
imported from, so a partner's product that loads it needs no Python setup of its own.

A folder is rebuilt only when the sources, the compiler flags or the interpreter changed (a stamp file holds
their digest). The build is atomic: each library is written to a temporary name and renamed into place, so a
product loading the library while another process rebuilds it never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conformance.input_errors import InputError

SOURCES = Path(__file__).with_name("c")
MAJORS = (6, 7, 8)
STAMP = ".vddkc-shim-stamp"
HEADER = "vddkc_vixdisklib.h"


class ShimBuildError(InputError):
    """The library could not be compiled: the one-line message names the compiler's first error."""


def package_root() -> Path:
    """The folder holding the `conformance` package (put on the agent's PYTHONPATH)."""
    return Path(__file__).resolve().parents[3]


def _flags(major: int) -> list[str]:
    python = sys.executable.replace("\\", "\\\\").replace('"', '\\"')
    root = str(package_root()).replace("\\", "\\\\").replace('"', '\\"')
    return [
        "-shared", "-fPIC", "-pthread", "-O2", "-Wall", "-Wextra", "-Wno-format-truncation", "-fvisibility=hidden",
        f"-DVDDKC_ABI_MAJOR={major}", f'-DVDDKC_DEFAULT_PYTHON="{python}"', f'-DVDDKC_PACKAGE_ROOT="{root}"',
        f"-Wl,-soname,libvixDiskLib.so.{major}",
    ]  # fmt: skip


def _digest(compiler: str, majors: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    for source in sorted(SOURCES.glob("*.[ch]")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    for major in majors:
        digest.update(" ".join([compiler, *_flags(major)]).encode())
    return digest.hexdigest()


def compiler() -> str:
    """The C compiler ($CC, else gcc, else cc); ShimBuildError naming what to install when there is none."""
    for candidate in (os.environ.get("CC"), "gcc", "cc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise ShimBuildError("no C compiler found to build the simulated libvixDiskLib (fix: install gcc or set CC)")


def build(out: Path, majors: tuple[int, ...] = MAJORS) -> dict[int, Path]:
    """`out`/libvixDiskLib.so.N for each major N (built unless up to date), by major version."""
    cc = compiler()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    libraries = {major: out / f"libvixDiskLib.so.{major}" for major in majors}
    digest = _digest(cc, majors)
    stamp = out / STAMP
    if stamp.is_file() and stamp.read_text() == digest and all(p.is_file() for p in libraries.values()):
        return libraries
    sources = [str(s) for s in sorted(SOURCES.glob("*.c"))]
    for major, target in libraries.items():
        handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", dir=out)
        os.close(handle)
        command = [cc, *_flags(major), "-o", partial, *sources, "-ldl"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            Path(partial).unlink(missing_ok=True)
            first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
            raise ShimBuildError(f"compiling libvixDiskLib.so.{major} failed: {first[:300]}")
        os.replace(partial, target)
    shutil.copy2(SOURCES / HEADER, out / HEADER)
    stamp.write_text(digest)
    return libraries


def default_folder() -> Path:
    """Where `vddk-conformance shim build` puts the libraries by default (per user, per harness checkout)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(str(package_root()).encode()).hexdigest()[:12]
    return base / "vddk-conformance" / f"shim-{tag}"
