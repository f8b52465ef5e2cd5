"""Find and load libvixDiskLib.so.N under a --vddk-libdir, the way nbdkit's VDDK plugin does.

VMware's kit keeps the library in `<libdir>/lib64/`; test doubles and unusual installs put it directly in
`<libdir>`. Both are searched, newest major first (8, 7, 6), unless a major version is asked for. Every
failure is one line naming what was searched.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from conformance.vixdisklib.native.symbols import MissingSymbolError, Symbols, bind

log = logging.getLogger("conformance.vixdisklib.native")

MAJORS = (8, 7, 6)
LIBRARY = "libvixDiskLib.so"
MNTAPI = "libvixMntapi.so"


class LibraryNotFoundError(FileNotFoundError):
    """No usable libvixDiskLib under the libdir; the message lists the paths tried."""


@dataclass
class LoadedLibrary:
    path: Path
    major: int
    cdll: ctypes.CDLL
    symbols: Symbols


def candidates(libdir: Path, major: int | None = None, stem: str = LIBRARY) -> list[Path]:
    """Paths tried, in order: lib64/ before the libdir itself, for each major version."""
    majors = (major,) if major is not None else MAJORS
    return [folder / f"{stem}.{n}" for n in majors for folder in (libdir / "lib64", libdir)]


def find_library(libdir: Path, major: int | None = None, stem: str = LIBRARY) -> tuple[Path, int]:
    """The first existing candidate and its major version; LibraryNotFoundError otherwise."""
    libdir = Path(libdir)
    if not libdir.is_dir():
        raise LibraryNotFoundError(f"--vddk-libdir {libdir} is not a directory")
    tried = candidates(libdir, major, stem)
    for path in tried:
        if path.is_file():
            return path, int(path.suffix[1:])
    names = ", ".join(str(p) for p in tried)
    raise LibraryNotFoundError(f"no {stem}.N found under --vddk-libdir {libdir} (tried {names})")


def load(libdir: Path, major: int | None = None) -> LoadedLibrary:
    """dlopen the library found under `libdir` (RTLD_NOW, so unresolved references fail here, not later); a missing
    required symbol raises MissingSymbolError, missing optional ones are logged in one warning line."""
    path, found_major = find_library(libdir, major)
    try:
        cdll = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as exc:
        raise LibraryNotFoundError(f"cannot load {path}: {exc}") from None
    symbols = bind(cdll, path)
    warning = symbols.warning()
    if warning:  # one line for every missing optional symbol: a kit's gaps read at a glance, not as a flood
        log.warning("%s", warning)
    return LoadedLibrary(path, found_major, cdll, symbols)


def find_mntapi(libdir: Path, major: int) -> Path | None:
    """libvixMntapi.so.N next to the VixDiskLib of the same major version, if the kit has one."""
    try:
        return find_library(libdir, major, MNTAPI)[0]
    except LibraryNotFoundError:
        return None


__all__ = ["LibraryNotFoundError", "LoadedLibrary", "MissingSymbolError", "candidates", "find_library", "load"]
