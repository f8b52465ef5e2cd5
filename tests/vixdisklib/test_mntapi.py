"""VixMntApi over the simulated VixDiskLib: volumes written by a guest, mounted from a backup, and R3.

One simulator for the module: each test uses its own VM (or its own FCD), so they do not interfere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import Connection, VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.mntapi import NO_VOLUME_TEXT, OsFamily, VixMntApi, VolumeType
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.simulated.mntapi import SimulatedVixMntApi
from conformance.vixdisklib.types import ConnectParams, OpenFlags, SpecType, UidCredentials, VStorageObjectSpec
from conformance.vsphere.volumes import (
    VOLUME_OFFSET,
    VolumeFormatError,
    check_file,
    parse_superblock,
    parse_table,
    volume_image,
    write_simple_volume,
)
from tests.sim.conftest import find
from tests.vixdisklib.conftest import connect_params, guest, snapshot
from tests.vixdisklib.conftest import disks_of as disks

PROXY = "proxy-rhel79"  # a Linux proxy OS 7.0.2 and 7.0.3 both support (F2)
FILES = {"hello.txt": b"hello from the guest\n", "data/blob.bin": bytes(range(256)) * 300}
OS_RELEASE = b'NAME="Red Hat Enterprise Linux"\nVERSION_ID="8.3"\nVARIANT="Server"\n'
MakeLibs = Callable[[str], tuple[VixDiskLib, VixMntApi]]


# --- fixtures and helpers ---


@pytest.fixture
def libs(tmp_path: Path) -> Iterator[MakeLibs]:
    """VixDiskLib + VixMntApi of a build, initialised with a tmpDirectory of the test's own."""
    made: list[tuple[VixDiskLib, VixMntApi]] = []

    def make(build: str) -> tuple[VixDiskLib, VixMntApi]:
        config = tmp_path / f"vddk-{build}.conf"
        config.write_text(render_config({"tmpDirectory": str(tmp_path / f"tmp-{build}")}))
        backend = SimulatedVixDiskLib(build, proxy_vm=PROXY)
        lib = VixDiskLib(backend)
        lib.init_ex(config)
        mnt = VixMntApi(lib, SimulatedVixMntApi(backend))
        mnt.init(config)
        made.append((lib, mnt))
        return lib, mnt

    yield make
    for lib, mnt in made:
        mnt.exit()
        lib.exit()


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def error_of(call: Callable[[], Any]) -> VixError:
    with pytest.raises(VixError) as caught:
        call()
    return caught.value


@pytest.fixture(scope="module")
def backed_up_vm(sim: Simulator, content: Any) -> tuple[Any, Any, str]:
    """target-vmfs with a two-file volume written from inside the guest, then snapshotted for a backup."""
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    write_simple_volume(guest(sim, content, vm), 0, FILES, label="data", mount_point="/data")
    snap = snapshot(vm, "backup")
    return vm, snap, disks(snap)[0].backing.fileName


def fcd_with_volume(sim: Simulator, content: Any, vm_name: str, files: dict[str, bytes]) -> tuple[Any, str, Any]:
    """(VM, FCD id, datastore): a new FCD attached to the VM, a volume written on it by the guest."""
    vm = find(content, vim.VirtualMachine, vm_name)
    ds = find(content, vim.Datastore, "vmfs-01")
    spec = vim.vslm.CreateSpec(
        name=f"fcd-{vm_name}",
        capacityInMB=64,
        keepAfterDeleteVm=True,
        backingSpec=vim.vslm.CreateSpec.DiskFileBackingSpec(datastore=ds, provisioningType="thin"),
    )
    task = content.vStorageObjectManager.CreateDisk_Task(spec)
    WaitForTask(task)
    fcd_id = task.info.result.config.id.id
    WaitForTask(vm.AttachDisk_Task(vim.vslm.ID(id=fcd_id), ds))
    index = next(i for i, d in enumerate(disks(vm)) if d.vDiskId is not None and d.vDiskId.id == fcd_id)
    write_simple_volume(guest(sim, content, vm), index, files, label="fcd")
    return vm, fcd_id, ds


def hotadd_backup(lib: VixDiskLib, sim: Simulator, vm: Any, fcd_id: str) -> None:
    """A HotAdd backup of the VM's FCD from a VM snapshot, cleaned up as a backup application does."""
    snap = snapshot(vm, f"backup-{fcd_id[:8]}")
    path = next(d for d in disks(snap) if d.vDiskId is not None and d.vDiskId.id == fcd_id).backing.fileName
    with (
        lib.connected(connect_params(sim).with_vm(vm._moId), True, snap._moId, "hotadd") as conn,
        lib.opened(conn, path) as d,
    ):
        assert lib.get_transport_mode(d) == "hotadd"
        lib.read(d, VOLUME_OFFSET // 512, 8)
    lib.cleanup(connect_params(sim))


def fcd_connection(lib: VixDiskLib, sim: Simulator, fcd_id: str, ds: Any, modes: str) -> Connection:
    fcd_params = ConnectParams(
        server_name=sim.host,
        port=sim.port,
        credentials=UidCredentials(sim.user, sim.password),
        thumbprint=sim.thumbprint,
        spec_type=SpecType.VSTORAGE_OBJECT,
        vstorage_object=VStorageObjectSpec(fcd_id, ds._moId),
    )
    return lib.connect_ex(fcd_params, True, None, modes)


def proxy_disk_count(content: Any) -> int:
    return len(disks(find(content, vim.VirtualMachine, PROXY)))


# --- the volume format, offline ---


def test_volume_image_round_trips_files() -> None:
    image = volume_image(FILES, label="data", mount_point="/data")
    superblock = parse_superblock(image)
    assert superblock is not None and superblock.label == "data" and superblock.volume_length == len(image)
    table = parse_table(superblock, image[superblock.table_offset : superblock.table_offset + superblock.table_length])
    assert table.mount_point == "/data"
    assert {e.name: check_file(e, image[e.offset : e.offset + e.length]) for e in table.files} == FILES
    assert all(e.offset % 4096 == 0 for e in table.files) and len(image) % 4096 == 0
    assert volume_image(FILES, label="data", mount_point="/data") == image  # deterministic


def test_volume_image_rejects_unsafe_names_and_damage_is_detected() -> None:
    for name in ("../x", "/abs", "a//b", "", "a/./b"):
        with pytest.raises(VolumeFormatError):
            volume_image({name: b"x"})
    with pytest.raises(VolumeFormatError):
        volume_image({"a": b"1", "a/b": b"2"})
    image = bytearray(volume_image(FILES))
    image[20] ^= 1  # inside the superblock: its CRC no longer matches
    assert parse_superblock(bytes(image)) is None
    assert parse_superblock(bytes(512)) is None


# --- mounting a backup ---


@pytest.mark.parametrize("transport", ["nbdssl", "hotadd"])
def test_mount_reads_back_files_written_in_the_guest(
    sim: Simulator, content: Any, libs: MakeLibs, backed_up_vm: tuple[Any, Any, str], transport: str
) -> None:
    vm, snap, path = backed_up_vm
    lib, mnt = libs("7.0.3")
    proxy_disks = proxy_disk_count(content)
    with lib.connected(connect_params(sim).with_vm(vm._moId), True, snap._moId, transport) as conn:
        with mnt.opened_disks(conn, [path]) as disk_set:
            # the disk set's disk came through the chosen transport: HotAdd puts it on the proxy VM
            assert proxy_disk_count(content) == proxy_disks + (transport == "hotadd")
            info = mnt.get_disk_set_info(disk_set)
            assert info.open_flags == OpenFlags.READ_ONLY and Path(info.mount_path).is_dir()
            [volume] = mnt.get_volume_handles(disk_set)
            before = mnt.get_volume_info(volume)
            assert before.type == VolumeType.BASIC_PARTITION and not before.is_mounted
            assert before.symbolic_link is None and before.guest_mount_points == ("/data",)
            mnt.mount_volume(volume, read_only=True)
            mounted = mnt.get_volume_info(volume)
            assert mounted.is_mounted and mounted.symbolic_link
            folder = Path(mounted.symbolic_link)
            assert folder.is_relative_to(Path(info.mount_path)) and files_under(folder) == FILES
            assert (folder / "hello.txt").stat().st_mode & 0o222 == 0  # read-only mount
            mnt.dismount_volume(volume, force=False)
            assert not folder.exists() and not mnt.get_volume_info(volume).is_mounted
        assert not Path(info.mount_path).exists()
    assert proxy_disk_count(content) == proxy_disks


def test_calls_are_recorded_in_the_vixdisklib_trace(
    sim: Simulator, libs: MakeLibs, backed_up_vm: tuple[Any, Any, str]
) -> None:
    vm, snap, path = backed_up_vm
    lib, mnt = libs("7.0.3")
    with (
        lib.connected(connect_params(sim).with_vm(vm._moId), True, snap._moId, "nbdssl") as conn,
        mnt.opened_disks(conn, [path]) as disk_set,
    ):
        [volume] = mnt.get_volume_handles(disk_set)
        with mnt.mounted(volume) as folder:
            assert (folder / "hello.txt").read_bytes() == FILES["hello.txt"]
    records = lib.recorder.records()
    names = [r.call for r in records]
    assert names == [
        "VixDiskLib_InitEx",
        "VixMntapi_Init",
        "VixDiskLib_ConnectEx",
        "VixMntapi_OpenDisks",
        "VixMntapi_GetVolumeHandles",
        "VixMntapi_MountVolume",
        "VixMntapi_GetVolumeInfo",
        "VixMntapi_DismountVolume",
        "VixMntapi_CloseDiskSet",
        "VixDiskLib_Disconnect",
    ]
    opened = records[3]
    assert opened.args["paths"] == [path] and opened.args["connection"] == records[2].handle
    assert records[4].handle == opened.handle and records[4].args["numberOfVolumes"] == 1
    assert records[5].handle == records[4].args["volumes"][0] and records[5].error is None
    assert sim.password not in lib.recorder.to_json()
    assert lib.violations() == []


def test_empty_disk_has_no_volumes(sim: Simulator, content: Any, libs: MakeLibs) -> None:
    vm = find(content, vim.VirtualMachine, "target-vvol")
    lib, mnt = libs("7.0.3")
    with (
        lib.connected(connect_params(sim).with_vm(vm._moId), True, None, "nbdssl") as conn,
        mnt.opened_disks(conn, [disks(vm)[0].backing.fileName]) as disk_set,
    ):
        assert mnt.get_volume_handles(disk_set) == []
        assert mnt.get_os_info(disk_set).family == OsFamily.NO_OS
        error = error_of(lambda: mnt.volumes_to_verify(disk_set))
        assert error.code == VixCode.MNTAPI_NO_VOLUME and error.text == NO_VOLUME_TEXT


def test_linux_open_disks_takes_exactly_one_disk(
    sim: Simulator, libs: MakeLibs, backed_up_vm: tuple[Any, Any, str]
) -> None:
    vm, snap, path = backed_up_vm
    lib, mnt = libs("7.0.3")
    assert mnt.backend.platform == "linux"
    with lib.connected(connect_params(sim).with_vm(vm._moId), True, snap._moId, "nbdssl") as conn:
        for paths in ([path, path], []):
            with pytest.raises(VixError) as caught:
                mnt.open_disks(conn, paths)
            assert caught.value.code == VixCode.INVALID_ARG
    failed = [r for r in lib.recorder.records() if r.call == "VixMntapi_OpenDisks"]
    assert [(r.args["numberOfDisks"], r.error) for r in failed] == [(2, VixCode.INVALID_ARG), (0, VixCode.INVALID_ARG)]


def test_misuse_gets_the_mntapi_errors(sim: Simulator, libs: MakeLibs, backed_up_vm: tuple[Any, Any, str]) -> None:
    vm, snap, path = backed_up_vm
    lib, mnt = libs("7.0.3")
    with lib.connected(connect_params(sim).with_vm(vm._moId), True, snap._moId, "nbdssl") as conn:
        disk_set = mnt.open_disks(conn, [path])
        [volume] = mnt.get_volume_handles(disk_set)
        assert error_of(lambda: mnt.mount_volume(volume, False)).code == VixCode.MNTAPI_VOLUME_NOT_WRITABLE
        mnt.mount_volume(volume)
        assert error_of(lambda: mnt.mount_volume(volume)).code == VixCode.MNTAPI_VOLUME_ALREADY_MOUNTED
        assert error_of(lambda: mnt.close_disk_set(disk_set)).code == VixCode.MNTAPI_OPEN_HANDLES
        mnt.dismount_volume(volume, force=True)
        assert error_of(lambda: mnt.dismount_volume(volume)).code == VixCode.MNTAPI_VOLUME_NOT_MOUNTED
        mnt.close_disk_set(disk_set)
        assert error_of(lambda: mnt.get_volume_handles(disk_set)).code == VixCode.INVALID_HANDLE


def test_damaged_file_fails_the_mount_and_os_info_reads_os_release(
    sim: Simulator, content: Any, libs: MakeLibs
) -> None:
    vm = find(content, vim.VirtualMachine, "target-vsan")
    files = {"etc/os-release": OS_RELEASE, "var/log/app.log": b"line\n" * 100}
    workload = guest(sim, content, vm)
    write_simple_volume(workload, 0, files, mount_point="/")
    image = volume_image(files, mount_point="/")
    superblock = parse_superblock(image)
    assert superblock is not None
    table = parse_table(superblock, image[superblock.table_offset : superblock.table_offset + superblock.table_length])
    log = next(e for e in table.files if e.name == "var/log/app.log")
    workload.write_disk(0, VOLUME_OFFSET + log.offset, b"LINE")  # the guest damages the file behind the volume
    lib, mnt = libs("7.0.3")
    with (
        lib.connected(connect_params(sim).with_vm(vm._moId), True, None, "nbdssl") as conn,
        mnt.opened_disks(conn, [disks(vm)[0].backing.fileName]) as disk_set,
    ):
        os_info = mnt.get_os_info(disk_set)
        assert (os_info.family, os_info.major, os_info.minor) == (OsFamily.OTHER, 8, 3)
        assert os_info.vendor == "Red Hat Enterprise Linux" and os_info.os_folder == "/"
        [volume] = mnt.get_volume_handles(disk_set)
        assert error_of(lambda: mnt.mount_volume(volume)).code == VixCode.MNTAPI_OS_ERROR
        assert not mnt.get_volume_info(volume).is_mounted


# --- R3: mounting an FCD on Linux after a HotAdd backup ---


def test_r3_fcd_mounts_after_hotadd_on_7_0_3(sim: Simulator, content: Any, libs: MakeLibs) -> None:
    vm, fcd_id, ds = fcd_with_volume(sim, content, "target-nfs", FILES)
    lib, mnt = libs("7.0.3")
    hotadd_backup(lib, sim, vm, fcd_id)
    conn = fcd_connection(lib, sim, fcd_id, ds, "hotadd:nbdssl")
    try:
        with mnt.opened_disks(conn, [f"[vmfs-01] VStorageObject:{fcd_id}"]) as disk_set:
            [volume] = mnt.volumes_to_verify(disk_set)
            with mnt.mounted(volume) as folder:
                assert files_under(folder) == FILES
    finally:
        lib.disconnect(conn)


def test_r3_fcd_after_hotadd_shows_no_volume_on_7_0_2(sim: Simulator, content: Any, libs: MakeLibs) -> None:
    vm, fcd_id, ds = fcd_with_volume(sim, content, "target-nfs41", FILES)
    lib, mnt = libs("7.0.2")
    fcd_path = f"[vmfs-01] VStorageObject:{fcd_id}"
    conn = fcd_connection(lib, sim, fcd_id, ds, "nbdssl")
    try:
        disk_set = mnt.open_disks(conn, [fcd_path])
        [volume] = mnt.get_volume_handles(disk_set)  # no HotAdd yet: 7.0.2 sees the volume
        hotadd_backup(lib, sim, vm, fcd_id)
        error = error_of(lambda: mnt.mount_volume(volume))
        assert error.code == VixCode.MNTAPI_NO_VOLUME and error.text == NO_VOLUME_TEXT
        assert mnt.get_volume_handles(disk_set) == []
        assert error_of(lambda: mnt.volumes_to_verify(disk_set)).code == VixCode.MNTAPI_NO_VOLUME
        mnt.close_disk_set(disk_set)
    finally:
        lib.disconnect(conn)
    # the FCD path on a VM connection is affected as well; the VM's own disk path is not an FCD open
    with lib.connected(connect_params(sim).with_vm(vm._moId), True, None, "nbdssl") as vm_conn:
        with mnt.opened_disks(vm_conn, [fcd_path]) as disk_set:
            assert mnt.get_volume_handles(disk_set) == []
        plain = next(d for d in disks(vm) if d.vDiskId is not None and d.vDiskId.id == fcd_id).backing.fileName
        with mnt.opened_disks(vm_conn, [plain]) as disk_set:
            assert len(mnt.get_volume_handles(disk_set)) == 1
    mount = next(r for r in lib.recorder.records() if r.call == "VixMntapi_MountVolume")
    assert mount.error == VixCode.MNTAPI_NO_VOLUME


def test_r3_the_mounts_own_hotadd_is_not_an_earlier_one_on_7_0_2(sim: Simulator, content: Any, libs: MakeLibs) -> None:
    _vm, fcd_id, ds = fcd_with_volume(sim, content, "target-nfs", {"known.txt": b"known"})
    lib, mnt = libs("7.0.2")
    fcd_path = f"[vmfs-01] VStorageObject:{fcd_id}"
    proxy_disks = proxy_disk_count(content)
    conn = fcd_connection(lib, sim, fcd_id, ds, "hotadd")
    try:
        with mnt.opened_disks(conn, [fcd_path]) as disk_set:
            assert proxy_disk_count(content) == proxy_disks + 1  # OpenDisks itself hot-added the FCD
            [volume] = mnt.volumes_to_verify(disk_set)
            with mnt.mounted(volume) as folder:
                assert (folder / "known.txt").read_bytes() == b"known"
    finally:
        lib.disconnect(conn)
    assert proxy_disk_count(content) == proxy_disks
    # that HotAdd has been cleaned up now: for the next FCD mount of this process it is an earlier one
    conn = fcd_connection(lib, sim, fcd_id, ds, "nbdssl")
    try:
        with mnt.opened_disks(conn, [fcd_path]) as disk_set:
            assert mnt.get_volume_handles(disk_set) == []
    finally:
        lib.disconnect(conn)
