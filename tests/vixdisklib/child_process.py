"""A separate backup process for the crash and Cleanup tests (K2): run as a script, told what to do on stdin.

Input (one JSON object): build, config (an InitEx configuration file or null for VDDK's default temporary
directory), server (host, port, user, password, thumbprint), and either
- "action": "hotadd-open" with vm, snapshot, path: open the disk over HotAdd, read a sector, print
  {"transport", "tmp_directory"} and wait to be killed; or
- "action": "cleanup": call Cleanup and print {"cleaned", "remaining"} or {"error", "code", "remaining"}.
The password comes on stdin so it never shows in a process listing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import ConnectParams, UidCredentials


def main() -> None:
    order = json.loads(sys.stdin.readline())
    server = order["server"]
    params = ConnectParams(
        server_name=server["host"],
        port=server["port"],
        credentials=UidCredentials(server["user"], server["password"]),
        thumbprint=server["thumbprint"],
    )
    backend = SimulatedVixDiskLib(order["build"], proxy_vm=order.get("proxy_vm"))
    lib = VixDiskLib(backend)
    lib.init_ex(Path(order["config"]) if order.get("config") else None)
    if order["action"] == "hotadd-open":
        connection = lib.connect_ex(params.with_vm(order["vm"]), True, order["snapshot"], "hotadd")
        disk = lib.open(connection, order["path"])
        lib.read(disk, 0, 1)
        report = {"transport": lib.get_transport_mode(disk), "tmp_directory": str(backend.tmp_directory)}
        print(json.dumps(report), flush=True)
        while True:  # a backup in progress, until SIGKILL
            time.sleep(60)
    elif order["action"] == "cleanup":
        try:
            cleaned, remaining = lib.cleanup(params)
        except VixError as exc:
            print(json.dumps({"error": str(exc), "code": exc.code, "remaining": getattr(exc, "remaining", None)}))
        else:
            print(json.dumps({"cleaned": cleaned, "remaining": remaining}))
        lib.exit()
    else:
        raise SystemExit(f"unknown action {order['action']!r}")


if __name__ == "__main__":
    main()
