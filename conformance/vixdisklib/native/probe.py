"""Preflight's check of a VDDK kit: load it, InitEx, read what it announces and offers, Exit, in a child process.

A libdir that holds a file named libvixDiskLib.so.N is not yet a library a run can use: the file may not load
(wrong architecture, a missing dependency), lack a required function, refuse InitEx or be another release than the
target declares. Symbols follow the run's rules (symbols.py): a missing required one refuses the kit in one line
naming them all; missing optional ones still load and come back as one warning line naming them (a kit that cannot
list its transport modes cannot have vddk.transports checked, which that line says). The check runs in a child so
that a library which aborts or crashes takes down only the child, and so that the preflight's own process never
holds VMware's global state.

    python -m conformance.vixdisklib.native.probe LIBDIR BUILD   ->  one JSON line on stdout
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the prefix of preflight lines that only warn (conformance.lab.preflight.WARNING; not imported: the lab imports us)
WARNING = "warning: "
#: how long loading, InitEx, ListTransportModes and Exit may take before the library counts as hung
PROBE_TIMEOUT = 60.0


def probe(libdir: Path, build: str) -> dict[str, Any]:
    """{"ok": True, "path", "build", "announced", "transports" (None: not listable), "missing" (optional symbols
    absent)} or {"ok": False, "problem": one line}."""
    from conformance.vixdisklib.errors import VixError
    from conformance.vixdisklib.native.library import NativeVixDiskLib
    from conformance.vixdisklib.native.loader import LibraryNotFoundError, MissingSymbolError
    from conformance.vixdisklib.types import VIXDISKLIB_VERSION_MAJOR, VIXDISKLIB_VERSION_MINOR

    major = build.split(".", 1)[0]
    if not major.isdigit():
        return {"ok": False, "problem": f"VDDK build {build!r} does not start with a major version number"}
    try:
        lib = NativeVixDiskLib(build, libdir, int(major))  # the library a run of `build` loads (factory.py)
    except (LibraryNotFoundError, MissingSymbolError) as exc:
        return {"ok": False, "problem": str(exc)}
    try:
        lib.init_ex(VIXDISKLIB_VERSION_MAJOR, VIXDISKLIB_VERSION_MINOR, None, None)
    except VixError as exc:  # LibraryBuildMismatchError too: it has undone InitEx
        return {"ok": False, "problem": f"{lib.path}: {exc}"}
    try:
        modes = lib.list_transport_modes() if lib.symbols.has("VixDiskLib_ListTransportModes") else None
    finally:
        lib.exit()
    announced = "-".join(lib.announced) if lib.announced else None
    return {
        "ok": True,
        "path": str(lib.path),
        "build": lib.build,
        "announced": announced,
        "transports": modes,
        "missing": lib.missing,
    }


def library_problems(where: str, libdir: Path, build: str, transports: tuple[str, ...]) -> list[str]:
    """Preflight lines for the kit under `libdir`: it must load, InitEx as release `build`, and offer `transports`."""
    command = [sys.executable, "-m", "conformance.vixdisklib.native.probe", str(libdir), build]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return [f"{where}: vddk.libdir: loading the library under {libdir} did not finish in {PROBE_TIMEOUT:.0f} s"]
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [
            f"{where}: vddk.libdir: the library under {libdir} ended the process that loaded it "
            f"(exit status {done.returncode}: {last}) (fix: use a working VDDK {build} kit)"
        ]
    if not answer.get("ok"):
        return [f"{where}: vddk.libdir: {answer.get('problem')}"]
    warnings = _missing_warning(where, answer, transports)
    if answer.get("transports") is None:
        return warnings
    offered = set(str(answer.get("transports") or "").split(":"))
    missing = [t for t in transports if t not in offered]
    if missing:
        return [
            *warnings,
            f"{where}: vddk.transports: the library {answer.get('path')} offers {answer.get('transports')!r}, "
            f"not {', '.join(missing)} (fix: remove them from vddk.transports)",
        ]
    return warnings


def _missing_warning(where: str, answer: dict[str, Any], transports: tuple[str, ...]) -> list[str]:
    """One `warning:` line (preflight still passes) naming every optional symbol the library lacks."""
    missing = [str(name) for name in answer.get("missing") or []]
    if not missing:
        return []
    unchecked = ""
    if answer.get("transports") is None and transports:
        unchecked = f"; vddk.transports ({', '.join(transports)}) not checked: the library cannot list its modes"
    return [
        f"{WARNING}{where}: vddk.libdir: the library {answer.get('path')} lacks optional symbol(s) "
        f"{', '.join(missing)}: their features are off{unchecked}"
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m conformance.vixdisklib.native.probe LIBDIR BUILD", file=sys.stderr)
        return 2
    print(json.dumps(probe(Path(argv[0]), argv[1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
