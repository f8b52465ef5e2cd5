"""Guest workloads through the vSphere guest operations API: the same code runs on lab and simulated VMs.

A workload copies a file into the guest and runs GNU `dd` there to write it onto one of the VM's disks
(`/dev/sda` is the first disk). The simulated ESXi implements that `dd` subset, a real Linux VM has it.
"""

from __future__ import annotations

import http.client
import shlex
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pyVmomi import vim

#: longest `sh -c` command one guest program run is given (a real guest's single-argument limit is 128 KiB)
BATCH_COMMAND_CHARS = 64 * 1024


class GuestOperationError(RuntimeError):
    """A guest program failed or a transfer was refused; the message says which and why."""


@dataclass
class GuestCredentials:
    user: str
    password: str = field(repr=False)  # never in reports or tracebacks

    def auth(self) -> Any:
        return vim.vm.guest.NamePasswordAuthentication(username=self.user, password=self.password)


class GuestWorkload:
    """Runs workloads in one VM. `ssl_context` must verify the server (pinned CA or thumbprint context)."""

    def __init__(
        self, content: Any, vm: Any, credentials: GuestCredentials, ssl_context: ssl.SSLContext, timeout: float = 120.0
    ) -> None:
        self.content = content
        self.vm = vm
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.timeout = timeout

    @property
    def _files(self) -> Any:
        return self.content.guestOperationsManager.fileManager

    @property
    def _processes(self) -> Any:
        return self.content.guestOperationsManager.processManager

    def _transfer(self, method: str, url: str, body: bytes | None = None) -> bytes:
        parts = urlsplit(url)
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port or 443, context=self.ssl_context, timeout=self.timeout
        )
        try:
            conn.request(method, f"{parts.path}?{parts.query}", body=body)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status not in (200, 201):
            raise GuestOperationError(
                f"guest file {method} on {self.vm.name} answered {response.status}: "
                f"{data[:200].decode(errors='replace')}"
            )
        return data

    def upload(self, guest_path: str, data: bytes) -> None:
        url = self._files.InitiateFileTransferToGuest(
            self.vm, self.credentials.auth(), guest_path, vim.vm.guest.FileManager.FileAttributes(), len(data), True
        )
        self._transfer("PUT", url, data)

    def download(self, guest_path: str) -> bytes:
        info = self._files.InitiateFileTransferFromGuest(self.vm, self.credentials.auth(), guest_path)
        return self._transfer("GET", info.url)

    def run(self, program: str, arguments: str = "") -> int:
        """Start a program and wait (bounded by `timeout`) for its exit code."""
        spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath=program, arguments=arguments)
        pid = self._processes.StartProgramInGuest(self.vm, self.credentials.auth(), spec)
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while time.monotonic() < deadline:
            [info] = self._processes.ListProcessesInGuest(self.vm, self.credentials.auth(), [pid])
            if info.endTime is not None:
                return int(info.exitCode)
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        self._processes.TerminateProcessInGuest(self.vm, self.credentials.auth(), pid)
        raise GuestOperationError(f"{program} {arguments} in {self.vm.name} did not finish within {self.timeout} s")

    def write_disk(self, disk_index: int, offset: int, data: bytes, staging: str = "/tmp/vddk-conformance.bin") -> None:
        """Write `data` at byte `offset` of the VM's disk number `disk_index` (0 = /dev/sda) with dd."""
        self.upload(staging, data)
        device = f"/dev/sd{chr(ord('a') + disk_index)}"
        code = self.run(
            "/usr/bin/dd",
            f"if={staging} of={device} bs=1M oflag=seek_bytes seek={offset} conv=notrunc,fsync status=none",
        )
        if code != 0:
            raise GuestOperationError(f"dd onto {device} of {self.vm.name} at offset {offset} exited {code}")

    def write_disk_many(
        self,
        disk_index: int,
        writes: Sequence[tuple[int, bytes]],
        staging: str = "/tmp/vddk-conformance-batch.bin",
    ) -> None:
        """Write many (offset, data) ranges with one upload and few program runs: the data go up as one file,
        and each `sh -c` run copies a batch of its slices with dd (thousands of small writes stay cheap)."""
        if not writes:
            return
        self.upload(staging, b"".join(data for _, data in writes))
        device = f"/dev/sd{chr(ord('a') + disk_index)}"
        for batch in _batches(staging, device, writes):
            code = self.run("/bin/sh", "-c " + shlex.quote(" && ".join([*batch, "sync"])))
            if code != 0:
                raise GuestOperationError(f"dd batch onto {device} of {self.vm.name} exited {code}")

    def rescan_disk(self, disk_index: int, staging: str = "/tmp/vddk-conformance-rescan") -> None:
        """Make the guest see the current size of a disk grown while it ran (Linux sysfs rescan, written with dd:
        guest operations start programs without a shell's redirections)."""
        self.upload(staging, b"1\n")
        name = f"sd{chr(ord('a') + disk_index)}"
        code = self.run("/usr/bin/dd", f"if={staging} of=/sys/class/block/{name}/device/rescan status=none")
        if code != 0:
            raise GuestOperationError(f"rescan of /dev/{name} in {self.vm.name} exited {code}")

    def zero_disk(self, disk_index: int, offset: int, length: int) -> None:
        device = f"/dev/sd{chr(ord('a') + disk_index)}"
        code = self.run(
            "/usr/bin/dd",
            f"if=/dev/zero of={device} bs=64K oflag=seek_bytes iflag=count_bytes "
            f"seek={offset} count={length} conv=notrunc status=none",
        )
        if code != 0:
            raise GuestOperationError(f"dd zeroing {device} of {self.vm.name} exited {code}")


def _batches(staging: str, device: str, writes: Sequence[tuple[int, bytes]]) -> Iterator[list[str]]:
    """dd commands copying each write's slice of the staging file, grouped under BATCH_COMMAND_CHARS."""
    batch: list[str] = []
    size, skip = 0, 0
    for offset, data in writes:
        command = (
            f"dd if={staging} of={device} bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes "
            f"skip={skip} count={len(data)} seek={offset} conv=notrunc status=none"
        )
        skip += len(data)
        if batch and size + len(command) + 4 > BATCH_COMMAND_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(command)
        size += len(command) + 4
    if batch:
        yield batch
