"""K4: HotAdd of a vSAN target VM's disks from a proxy that lives outside vSAN.

The catalog makes K4 a known issue of every modelled build (no build range in the notes; unsupported through
8.0), so the reproducer asserts the fixed, desired behaviour — HotAdd works for a vSAN target whatever the
proxy's datastore — and is reported as the known issue; it is parametrized over "hotadd" alone (today: Open
fails with a VixError) and "hotadd:nbdssl" (today: the library falls back to nbdssl). The workaround
``proxy-on-vsan`` moves the proxy VM's storage to the vSAN datastore (RelocateVM_Task, undone by the resource
tracker so the shared proxy ends up where it was); HotAdd then works and GetTransportMode says hotadd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.resources import Resource, ResourceTracker
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.targets import Target
from conformance.verdicts.job import backed_up
from conformance.vsphere.session import VsphereSession

pytestmark = [pytest.mark.sequence("backup")]


def home_datastore(vm: Any) -> str:
    """The datastore holding the VM's configuration file ("[ds] dir/vm.vmx")."""
    return str(vm.config.files.vmPathName)[1:].split("]", 1)[0]


def relocate(vsphere: VsphereSession, vm_name: str, datastore: str) -> None:
    vsphere.relocate_vm(vsphere.vm(vm_name), datastore)


def relocated(vsphere: VsphereSession, resources: ResourceTracker, vm_name: str, datastore: str) -> Resource:
    """Move a VM's storage; the tracker moves it back to where it was."""
    origin = home_datastore(vsphere.vm(vm_name))
    relocate(vsphere, vm_name, datastore)
    return resources.add("relocation", f"{vm_name} to {datastore}", lambda: relocate(vsphere, vm_name, origin))


@pytest.fixture
def vsan_vm(fresh_vm: Callable[..., str]) -> str:
    return fresh_vm("vsan")


@pytest.fixture
def proxy_off_vsan(sequence: SequenceContext, vsphere: VsphereSession, vddk_target: Target) -> str:
    """The sequence's HotAdd proxy, checked to live on a datastore that is not vSAN."""
    assert sequence.proxy_vm is not None, f"target {vddk_target.name} has no HotAdd proxy VM"
    home = home_datastore(vsphere.vm(sequence.proxy_vm))
    assert home not in vddk_target.datastores.get("vsan", []), f"proxy {sequence.proxy_vm} already lives on vSAN"
    return sequence.proxy_vm


@pytest.mark.release_note("K4")
@pytest.mark.test_id("K4-001")
@pytest.mark.parametrize("transports", ["hotadd", "hotadd:nbdssl"])
def test_hotadd_backs_up_a_vsan_vm_from_a_proxy_outside_vsan(
    sequence: SequenceContext, backup_app: BackupApplication, vsan_vm: str, proxy_off_vsan: str, transports: str
) -> None:
    backup = backed_up(sequence, backup_app, vsan_vm, transports)
    assert {d.transport for d in backup.disks} == {"hotadd"}


@pytest.mark.release_note("K4", workaround="proxy-on-vsan")
@pytest.mark.test_id("K4-002")
def test_hotadd_works_once_the_proxy_is_moved_to_vsan(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    vsphere: VsphereSession,
    vddk_target: Target,
    vsan_vm: str,
    proxy_off_vsan: str,
) -> None:
    vsan = vddk_target.datastore_of_type("vsan")
    assert vsan is not None
    relocated(vsphere, sequence.resources, proxy_off_vsan, vsan)
    backup = backed_up(sequence, backup_app, vsan_vm, "hotadd")
    assert {d.transport for d in backup.disks} == {"hotadd"}


@pytest.mark.release_note("K4", workaround="proxy-on-vsan")
@pytest.mark.test_id("K4-003")
def test_the_moved_proxy_returns_to_its_datastore(
    sequence: SequenceContext, vsphere: VsphereSession, vddk_target: Target, proxy_off_vsan: str
) -> None:
    origin = home_datastore(vsphere.vm(proxy_off_vsan))
    vsan = vddk_target.datastore_of_type("vsan")
    assert vsan is not None
    sequence.resources.release(relocated(vsphere, sequence.resources, proxy_off_vsan, vsan))
    assert home_datastore(vsphere.vm(proxy_off_vsan)) == origin
