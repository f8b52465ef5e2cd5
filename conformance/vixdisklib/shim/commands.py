"""`vddk-conformance shim ...`: build the simulated/tracing libvixDiskLib and say how a product uses it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from conformance.vixdisklib.shim.build import HEADER, MAJORS, build, default_folder


def usage(libdir: Path) -> dict[str, Any]:
    """How a product loads the library: the folder, the files, and the environment of each mode."""
    return {
        "libdir": str(libdir),
        "libraries": {
            str(m): str(libdir / f"libvixDiskLib.so.{m}") for m in MAJORS if (libdir / f"libvixDiskLib.so.{m}").exists()
        },
        "header": str(libdir / HEADER),
        "simulated": {
            "LD_LIBRARY_PATH": str(libdir),
            "VDDKC_SHIM_AGENT": "<the socket `vddk-conformance sim serve --vddk-agent` prints; unset: a private agent>",
            "VDDKC_TRACE": "<optional: a file for the call trace>",
        },
        "tracing": {
            "LD_LIBRARY_PATH": str(libdir),
            "VDDKC_SHIM_FORWARD": "<the VDDK kit folder holding VMware's libvixDiskLib (or its lib64/)>",
            "VDDKC_TRACE": "<a file for the call trace>",
        },
    }


def _shim_build(args: argparse.Namespace) -> int:
    libdir = Path(args.out) if args.out else default_folder()
    build(libdir)
    print(json.dumps(usage(libdir), indent=1))
    return 0


def add_commands(commands: Any) -> None:
    """Register `shim build` on the command line's subparsers."""
    shim = commands.add_parser("shim", help="the simulated and tracing libvixDiskLib.so for a partner's product")
    shim_commands = shim.add_subparsers(dest="shim_command", required=True)
    build_command = shim_commands.add_parser(
        "build", help="compile libvixDiskLib.so.6/.7/.8 (up-to-date folders are kept); prints how to use them"
    )
    build_command.add_argument("--out", help="folder for the libraries (default: a per-user cache folder)")
    build_command.set_defaults(handler=_shim_build)
