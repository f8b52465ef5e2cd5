"""Guest operations of the simulated vCenter through pyVmomi and the /guestFile HTTPS URLs: file
transfers, the guest file manager, and the program set (dd writing to the VM's disks)."""

from __future__ import annotations

import http.client
import os
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.sim.storage.vmdk import VirtualDiskFile
from tests.sim.conftest import wait

AUTH = vim.vm.guest.NamePasswordAuthentication(username="root", password="s3cret")
MiB = 1024 * 1024
DISK_CAPACITY = 268435456  # the default target VMs' single disk


def transfer(sim: Simulator, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """PUT or GET on a /guestFile URL as workloads do: no session cookie, the URL's token is the credential."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=str(sim.cert_file))
    conn = http.client.HTTPSConnection(parts.hostname or sim.host, parts.port or sim.port, context=context, timeout=30)
    try:
        conn.request(method, f"{parts.path}?{parts.query}", body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def upload(sim: Simulator, content: Any, vm: Any, guest_path: str, data: bytes) -> None:
    files = content.guestOperationsManager.fileManager
    url = files.InitiateFileTransferToGuest(
        vm, AUTH, guest_path, vim.vm.guest.FileManager.FileAttributes(), len(data), True
    )
    assert url.startswith(f"https://127.0.0.1:{sim.port}/guestFile?id=")
    assert transfer(sim, "PUT", url, data)[0] == 200


def download(sim: Simulator, content: Any, vm: Any, guest_path: str) -> bytes:
    info = content.guestOperationsManager.fileManager.InitiateFileTransferFromGuest(vm, AUTH, guest_path)
    status, data = transfer(sim, "GET", info.url)
    assert status == 200 and len(data) == info.size
    return data


def start(content: Any, vm: Any, program: str, arguments: str = "", auth: Any = AUTH) -> int:
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath=program, arguments=arguments)
    return int(content.guestOperationsManager.processManager.StartProgramInGuest(vm, auth, spec))


def wait_exit(content: Any, vm: Any, pid: int, timeout: float = 30.0) -> Any:
    """Poll ListProcessesInGuest (bounded) until the process has an end time; its ProcessInfo."""
    processes = content.guestOperationsManager.processManager
    for _ in range(int(timeout / 0.05)):
        [info] = processes.ListProcessesInGuest(vm, AUTH, [pid])
        if info.endTime is not None:
            return info
        time.sleep(0.05)
    raise AssertionError(f"guest process {pid} still running after {timeout} s")


def run(content: Any, vm: Any, program: str, arguments: str = "") -> int:
    return int(wait_exit(content, vm, start(content, vm, program, arguments)).exitCode)


def first_disk(owner: Any) -> Any:
    """The first VirtualDisk of a VM or a snapshot (both have config.hardware.device)."""
    return next(d for d in owner.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))


def read_disk(sim: Simulator, vm: Any, offset: int, length: int) -> bytes:
    """The VM's first disk as stored on the datastore (through its whole chain), read from the host file."""
    ds, relative = first_disk(vm).backing.fileName[1:].split("] ", 1)
    disk = VirtualDiskFile.open(sim.state_dir / "datastores" / ds / relative)
    try:
        return disk.read(offset, length)
    finally:
        disk.close()


@pytest.fixture
def vm(vm_named: Any) -> Any:
    return vm_named("target-vmfs")


def test_dd_writes_an_uploaded_pattern_at_an_offset(sim: Simulator, content: Any, vm: Any) -> None:
    pattern = os.urandom(64 * 1024)
    upload(sim, content, vm, "/tmp/pattern.bin", pattern)
    pid = start(
        content, vm, "/usr/bin/dd", "if=/tmp/pattern.bin of=/dev/sda bs=4096 seek=256 count=16 conv=notrunc,fsync"
    )
    assert wait_exit(content, vm, pid).exitCode == 0
    assert read_disk(sim, vm, 256 * 4096, len(pattern)) == pattern
    assert read_disk(sim, vm, 256 * 4096 - 4096, 4096) == bytes(4096)
    assert read_disk(sim, vm, 256 * 4096 + len(pattern), 4096) == bytes(4096)
    report = download(sim, content, vm, f"/tmp/vmware-dd-{pid}.err").decode()
    assert "16+0 records in" in report and "16+0 records out" in report


def test_dd_byte_offsets_and_counts(sim: Simulator, content: Any, vm: Any) -> None:
    pattern = os.urandom(10_000)
    upload(sim, content, vm, "/tmp/p.bin", pattern)
    args = (
        "if=/tmp/p.bin of=/dev/sda bs=1K skip=100 count=5000 seek=1000003 iflag=skip_bytes,count_bytes oflag=seek_bytes"
    )
    assert run(content, vm, "/bin/dd", args) == 0
    assert read_disk(sim, vm, 1000003, 5000) == pattern[100:5100]
    assert read_disk(sim, vm, 1000003 + 5000, 1) == b"\0"


def test_dd_from_dev_urandom_with_count(sim: Simulator, content: Any, vm: Any) -> None:
    assert run(content, vm, "/bin/dd", "if=/dev/urandom of=/dev/sda bs=1M count=3 seek=10") == 0
    written = read_disk(sim, vm, 10 * MiB, 3 * MiB)
    assert written.count(0) < len(written) // 100  # random bytes, not zeros
    assert read_disk(sim, vm, 13 * MiB, MiB) == bytes(MiB)
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/dev/sda bs=1M count=1 seek=10") == 0
    assert read_disk(sim, vm, 10 * MiB, MiB) == bytes(MiB)


def test_dd_writes_are_seen_by_changed_block_tracking(sim: Simulator, content: Any, vm: Any) -> None:
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    before = wait(vm.CreateSnapshot_Task("before", "", False, False))
    change_id = first_disk(before).backing.changeId
    assert run(content, vm, "/bin/dd", "if=/dev/urandom of=/dev/sda bs=64K count=2 seek=40") == 0
    after = wait(vm.CreateSnapshot_Task("after", "", False, False))
    changes = vm.QueryChangedDiskAreas(after, first_disk(vm).key, 0, change_id)
    assert [(a.start, a.length) for a in changes.changedArea] == [(40 * 65536, 2 * 65536)]


def test_dd_past_the_end_of_the_disk_fails_and_writes_only_what_fits(sim: Simulator, content: Any, vm: Any) -> None:
    pattern = os.urandom(64 * 1024)
    upload(sim, content, vm, "/tmp/pattern.bin", pattern)
    last_blocks = DISK_CAPACITY // 4096 - 4
    pid = start(content, vm, "/usr/bin/dd", f"if=/tmp/pattern.bin of=/dev/sda bs=4096 seek={last_blocks} count=16")
    assert wait_exit(content, vm, pid).exitCode == 1
    assert read_disk(sim, vm, DISK_CAPACITY - 16384, 16384) == pattern[:16384]
    assert "No space left on device" in download(sim, content, vm, f"/tmp/vmware-dd-{pid}.err").decode()
    assert run(content, vm, "/usr/bin/dd", f"if=/tmp/pattern.bin of=/dev/sda bs=4096 seek={DISK_CAPACITY}") == 1
    assert first_disk(vm).capacityInBytes == DISK_CAPACITY
    flat = sim.state_dir / "datastores" / "vmfs-01" / "target-vmfs" / "target-vmfs-flat.vmdk"
    assert flat.stat().st_size <= DISK_CAPACITY


def test_dd_usage_errors_exit_1(content: Any, vm: Any) -> None:
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/dev/sda bogus=1") == 1
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/dev/sda bs=0") == 1
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/dev/sdq count=1") == 1  # the VM has one disk
    assert run(content, vm, "/bin/dd", "if=/tmp/does-not-exist of=/dev/null") == 1
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/dev/null conv=frobnicate count=1") == 1


def test_dd_from_disk_to_a_guest_file_and_download(sim: Simulator, content: Any, vm: Any) -> None:
    pattern = os.urandom(8192)
    upload(sim, content, vm, "/tmp/in.bin", pattern)
    assert run(content, vm, "/bin/dd", "if=/tmp/in.bin of=/dev/sda bs=8192 seek=7") == 0
    assert run(content, vm, "/bin/sh", "-c 'dd if=/dev/sda of=/tmp/out.bin bs=8192 skip=7 count=1 && sync'") == 0
    assert download(sim, content, vm, "/tmp/out.bin") == pattern


def test_file_transfer_url_is_single_use_and_needs_its_token(sim: Simulator, content: Any, vm: Any) -> None:
    upload(sim, content, vm, "/tmp/once.txt", b"hello guest")
    info = content.guestOperationsManager.fileManager.InitiateFileTransferFromGuest(vm, AUTH, "/tmp/once.txt")
    assert info.size == 11 and isinstance(info.attributes, vim.vm.guest.FileManager.PosixFileAttributes)
    assert transfer(sim, "GET", info.url) == (200, b"hello guest")
    assert transfer(sim, "GET", info.url)[0] == 401
    assert transfer(sim, "GET", f"https://127.0.0.1:{sim.port}/guestFile?id=forged")[0] == 401


def test_file_manager_basics(sim: Simulator, content: Any, vm: Any) -> None:
    files = content.guestOperationsManager.fileManager
    files.MakeDirectoryInGuest(vm, AUTH, "/data/deep/er", True)
    with pytest.raises(vim.fault.FileAlreadyExists):
        files.MakeDirectoryInGuest(vm, AUTH, "/data/deep/er", True)
    upload(sim, content, vm, "/data/deep/er/a.txt", b"abc")
    listing = files.ListFilesInGuest(vm, AUTH, "/data/deep/er")
    assert [(f.path, f.type, f.size) for f in listing.files] == [("a.txt", "file", 3)]
    with pytest.raises(vim.fault.FileAlreadyExists):
        files.InitiateFileTransferToGuest(
            vm, AUTH, "/data/deep/er/a.txt", vim.vm.guest.FileManager.FileAttributes(), 3, False
        )
    with pytest.raises(vim.fault.FileNotFound):
        files.InitiateFileTransferToGuest(
            vm, AUTH, "/no/such/dir/a.txt", vim.vm.guest.FileManager.FileAttributes(), 3, True
        )
    files.DeleteFileInGuest(vm, AUTH, "/data/deep/er/a.txt")
    with pytest.raises(vim.fault.FileNotFound):
        files.DeleteFileInGuest(vm, AUTH, "/data/deep/er/a.txt")
    assert files.ListFilesInGuest(vm, AUTH, "/data/deep/er").files == []
    upload(sim, content, vm, "/../../../escape.txt", b"x")  # guest `..` stops at the guest's root
    assert [f.path for f in files.ListFilesInGuest(vm, AUTH, "/", matchPattern="^escape").files] == ["escape.txt"]


def test_bad_guest_login_is_refused(content: Any, vm: Any) -> None:
    no_password = vim.vm.guest.NamePasswordAuthentication(username="root", password="")
    with pytest.raises(vim.fault.InvalidGuestLogin):
        start(content, vm, "/bin/true", auth=no_password)
    with pytest.raises(vim.fault.InvalidGuestLogin):
        content.guestOperationsManager.fileManager.InitiateFileTransferFromGuest(vm, no_password, "/tmp/x")


def test_powered_off_vm_is_refused(content: Any, vm: Any) -> None:
    wait(vm.PowerOffVM_Task())
    with pytest.raises(vim.fault.InvalidPowerState):
        start(content, vm, "/bin/true")
    with pytest.raises(vim.fault.InvalidPowerState):
        content.guestOperationsManager.fileManager.ListFilesInGuest(vm, AUTH, "/tmp")


def test_unknown_program_exits_127_and_the_small_programs(content: Any, vm: Any) -> None:
    assert run(content, vm, "/usr/bin/no-such-program", "--flag") == 127
    assert run(content, vm, "/bin/true") == 0
    assert run(content, vm, "/bin/false") == 1
    assert run(content, vm, "/usr/bin/sync") == 0
    assert run(content, vm, "/bin/bash", "-c 'true && exit 7'") == 7
    assert run(content, vm, "/bin/sh", "-c 'false || nosuchcmd'") == 127
    assert run(content, vm, "/bin/sh", "-c 'cat /etc/passwd | wc -l'") == 2
    info = wait_exit(content, vm, start(content, vm, "/bin/true", "a b"))
    assert (info.name, info.owner, info.cmdLine) == ("true", "root", '"/bin/true" a b')
    assert info.startTime <= info.endTime


def test_windows_guest_paths_and_cmd_exit(sim: Simulator, content: Any, vm_named: Any) -> None:
    windows = vm_named("target-win2019")
    assert run(content, windows, r"C:\Windows\System32\cmd.exe", "/c exit 3") == 3
    assert run(content, windows, r"C:\Windows\System32\cmd.exe", "/c exit 0") == 0
    assert run(content, windows, r"C:\Windows\System32\cmd.exe", "/c frobnicate") == 9009
    assert run(content, windows, "/bin/true") == 127
    upload(sim, content, windows, r"C:\Windows\Temp\note.txt", b"windows")
    assert download(sim, content, windows, "C:/Windows/Temp/note.txt") == b"windows"
    assert download(sim, content, windows, r"c:\windows\TEMP\NOTE.txt") == b"windows"  # case-insensitive
    listing = content.guestOperationsManager.fileManager.ListFilesInGuest(windows, AUTH, "C:\\Windows\\Temp")
    assert "note.txt" in [f.path for f in listing.files]
    with pytest.raises(vim.fault.FileNotFound):
        content.guestOperationsManager.fileManager.InitiateFileTransferFromGuest(windows, AUTH, r"D:\nothing.txt")


def test_sleep_runs_until_terminated(content: Any, vm: Any) -> None:
    processes = content.guestOperationsManager.processManager
    pid = start(content, vm, "/bin/sleep", "600")
    time.sleep(0.2)
    [info] = processes.ListProcessesInGuest(vm, AUTH, [pid])
    assert info.endTime is None and info.exitCode is None
    began = time.monotonic()
    processes.TerminateProcessInGuest(vm, AUTH, pid)
    assert wait_exit(content, vm, pid, timeout=5).exitCode == 137
    assert time.monotonic() - began < 5
    with pytest.raises(vim.fault.GuestProcessNotFound):
        processes.TerminateProcessInGuest(vm, AUTH, 999_999)
    assert run(content, vm, "/bin/sleep", "0.1") == 0
    assert pid in [p.pid for p in processes.ListProcessesInGuest(vm, AUTH)]


def test_dd_size_suffixes_and_file_truncation(sim: Simulator, content: Any, vm: Any) -> None:
    pattern = os.urandom(8192)
    upload(sim, content, vm, "/tmp/p.bin", pattern)
    assert run(content, vm, "/bin/dd", "if=/tmp/p.bin of=/dev/sda bs=2x2K count=1 seek=1") == 0
    assert read_disk(sim, vm, 4096, 4096) == pattern[:4096]
    assert run(content, vm, "/bin/dd", "if=/tmp/p.bin of=/dev/sda bs=1kB count=1 seek=100") == 0
    assert read_disk(sim, vm, 100_000, 1001) == pattern[:1000] + b"\0"
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/tmp/f.bin bs=1K count=3") == 0
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/tmp/f.bin bs=1K seek=1 count=0") == 0  # truncates
    assert len(download(sim, content, vm, "/tmp/f.bin")) == 1024
    assert run(content, vm, "/bin/dd", "if=/dev/zero of=/tmp/f.bin bs=1K seek=4 count=0 conv=notrunc") == 0
    assert len(download(sim, content, vm, "/tmp/f.bin")) == 1024


def test_transfer_is_aborted_when_the_vm_powers_off(sim: Simulator, content: Any, vm: Any) -> None:
    url = content.guestOperationsManager.fileManager.InitiateFileTransferToGuest(
        vm, AUTH, "/tmp/late.bin", vim.vm.guest.FileManager.FileAttributes(), 4, True
    )
    wait(vm.PowerOffVM_Task())
    assert transfer(sim, "PUT", url, b"late")[0] == 503
