"""R3: after a HotAdd backup on a Linux proxy, VixMntApi mounts a First Class Disk's volume.

Before 7.0.3 the hot-added disk's cleanup clashed with the FCD's marker data, and a later mount of the FCD
failed with "No volume found to perform verification of reading files." The test attaches a new FCD to a
fresh VM, writes a volume with a known file on it from inside the guest, backs the VM up over HotAdd (the
FCD is one of its disks) and cleans up, then mounts the FCD through VixMntApi on an FCD connection and
reads the known file back. Parametrized over the transport the mount itself uses.

The volume is written in the harness's own format (VDDKCFS1, `conformance.vsphere.volumes`), which only a
VixMntApi that knows it can mount: the test needs the target's SIMPLE_VOLUMES capability (a lab target file
declares it only if its VixMntApi mounts that format) and skips naming it otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyVmomi import vim

from conformance.knowledge.symptoms import symptom
from conformance.lab.targets import SIMPLE_VOLUMES, Target
from conformance.plugin.fixtures import require
from conformance.sequences.context import SequenceContext
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.factory import make_mntapi
from conformance.vixdisklib.mntapi import VixMntApi
from conformance.vixdisklib.types import SpecType, VStorageObjectSpec
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession
from conformance.vsphere.volumes import write_simple_volume
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.release_note("R3"), pytest.mark.sequence("backup")]
KNOWN_FILES = {"known.txt": b"vddk-conformance R3 known file\n", "data/blob.bin": bytes(range(256)) * 64}


@dataclasses.dataclass(frozen=True)
class Fcd:
    vm_name: str  # the VM the FCD is attached to
    id: str
    datastore: str
    datastore_moref: str

    @property
    def path(self) -> str:
        return f"[{self.datastore}] VStorageObject:{self.id}"


@pytest.fixture
def fcd_with_known_files(
    fresh_vm: Callable[..., str],
    vsphere: VsphereSession,
    vddk_target: Target,
    sequence: SequenceContext,
    guest: Callable[[str], GuestWorkload],
) -> Fcd:
    """A new FCD attached to a fresh VM, holding a volume with KNOWN_FILES written from inside the guest."""
    require(vddk_target, SIMPLE_VOLUMES)
    vm_name = fresh_vm("VMFS")
    ds_name = vddk_target.datastore_of_type("VMFS")
    assert ds_name is not None
    vm, ds, resources = vsphere.vm(vm_name), vsphere.datastore(ds_name), sequence.resources
    name = resources.name("fcd")
    fcd_id = vsphere.create_fcd(name, ds_name, 64)
    resources.add("fcd", name, lambda: vsphere.delete_fcd(fcd_id, ds_name))
    vsphere.attach_fcd(vm, fcd_id, ds_name)
    resources.add("fcd-attachment", f"{name} on {vm_name}", lambda: vsphere.detach_fcd(vm, fcd_id))
    devices = sorted(
        (d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
        key=lambda d: d.unitNumber or 0,
    )
    index = next(i for i, d in enumerate(devices) if d.vDiskId is not None and d.vDiskId.id == fcd_id)
    write_simple_volume(guest(vm_name), index, KNOWN_FILES, label="fcd")
    return Fcd(vm_name, fcd_id, ds_name, ds._moId)


@pytest.fixture
def mntapi(vixdisklib: VixDiskLib, vddk_config_file: Path, sequence: SequenceContext) -> Iterator[VixMntApi]:
    """VixMntApi next to the run's library (it depends on ``sequence``, whose resources go first)."""
    mnt = make_mntapi(vixdisklib)
    mnt.init(vddk_config_file)
    yield mnt
    mnt.exit()


@pytest.mark.test_id(
    "R3-001",
    uuid="e34797fe-f2a8-4531-bff6-eaa0931fcbf3",
    since="vddk-7.0.3-v2",
    description="Fcd volume mounts after a hotadd backup and the known file reads back",
)
@pytest.mark.parametrize("mount_transport", ["nbdssl", "hotadd:nbdssl"])
def test_fcd_volume_mounts_after_a_hotadd_backup_and_the_known_file_reads_back(
    sequence: SequenceContext,
    back_up: BackUp,
    vddk_target: Target,
    fcd_with_known_files: Fcd,
    mntapi: VixMntApi,
    mount_transport: str,
) -> None:
    fcd, lib = fcd_with_known_files, sequence.lib
    job = back_up(fcd.vm_name, "hotadd")
    assert job.transports == {"hotadd"}
    params = dataclasses.replace(
        vddk_target.connect_params(),
        spec_type=SpecType.VSTORAGE_OBJECT,
        vstorage_object=VStorageObjectSpec(fcd.id, fcd.datastore_moref),
    )
    connection = lib.connect_ex(params, True, None, mount_transport)
    sequence.resources.add("connection", fcd.path, lambda: lib.disconnect(connection))
    try:
        with mntapi.opened_disks(connection, [fcd.path]) as disk_set:
            [volume] = mntapi.volumes_to_verify(disk_set)
            with mntapi.mounted(volume) as folder:
                found = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    except VixError as exc:
        if exc.code == VixCode.MNTAPI_NO_VOLUME:  # R3's documented symptom (7.0.2 and older)
            symptom("R3", "the FCD volume did not mount: no volume found to verify", observed=str(exc))
        raise
    assert found == KNOWN_FILES
