"""Per-call cost of the tracing libvixDiskLib over the library it forwards to (the harness's C double).

Three runs of the same C program (bench/shim/calls.c, N one-sector Reads and N GetTransportMode calls): linked
to the double directly, to the tracing library without a trace file, and with one. The difference is what
tracing adds to each call of a partner's product.

Run: python bench/shim_bench.py [--calls N] [--json OUT]. Numbers are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.shim.build import SOURCES, build

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parent / "tests" / "native" / "double" / "vixdisklib_double.c"


def _gcc(*args: str) -> None:
    subprocess.run(["gcc", *args], check=True)


def measure(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vddkc-shim-bench-") as temp:
        root = Path(temp)
        (root / "double").mkdir()
        double = root / "double" / "libvixDiskLib.so.7"
        _gcc("-shared", "-fPIC", "-pthread", "-O2", "-fvisibility=hidden", "-DVIXDOUBLE_MAJOR=7",
             "-Wl,-soname,libvixDiskLib.so.7", "-o", str(double), str(DOUBLE))  # fmt: skip
        tracing = build(root / "tracing", majors=(7,))[7].parent
        program = root / "calls"
        _gcc("-O2", f"-I{SOURCES}", "-o", str(program), str(HERE / "shim" / "calls.c"), f"-L{double.parent}",
             "-l:libvixDiskLib.so.7")  # fmt: skip
        disk = VirtualDiskFile.create(root / "disk.vmdk", 1024 * 1024)
        disk.write(0, os.urandom(512 * 1024))
        disk.close()
        runs = {
            "double": {"LD_LIBRARY_PATH": str(double.parent)},
            "tracing, no trace file": {"LD_LIBRARY_PATH": str(tracing), "VDDKC_SHIM_FORWARD": str(double.parent)},
            "tracing, trace file": {
                "LD_LIBRARY_PATH": str(tracing), "VDDKC_SHIM_FORWARD": str(double.parent),
                "VDDKC_TRACE": str(root / "trace.jsonl"),
            },
        }  # fmt: skip
        results: dict[str, Any] = {}
        for name, extra in runs.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("VDDKC_")} | extra
            out = subprocess.run([str(program), str(root / "disk.vmdk"), str(calls)], env=env, check=True,
                                 capture_output=True, text=True)  # fmt: skip
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        trace_lines = sum(1 for _ in (root / "trace.jsonl").open())
    base = results["double"]
    for result in results.values():
        for figure in ("read", "get_transport_mode"):
            result[f"{figure}_overhead_ns"] = round(result[f"{figure}_ns"] - base[f"{figure}_ns"], 1)
    return {"calls": calls, "trace_lines": trace_lines, "runs": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = measure(args.calls)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
