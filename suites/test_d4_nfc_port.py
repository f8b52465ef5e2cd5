"""D4: the hosts' NFC port (902) closed while the vSphere API port (443) works.

Login, snapshot and every metadata call go over 443 and succeed; disk data goes over the NFC port, so the first
Open fails. The harness checks the data plane before any backup (`vddk-conformance preflight`, and this test),
and a failure on such a target carries one line that names the host, the port and the fix, which the reports
class as a lab problem, not a product defect (conformance/plugin/lab_problems.py).
"""

from __future__ import annotations

import pytest

from conformance.lab.dataplane_check import data_plane_problems
from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.release_note("D4"), pytest.mark.sequence("backup")]


@pytest.mark.test_id(
    "D4-001",
    uuid="91d178e3-af6b-4db2-848a-1b41953eed47",
    since="vddk-7.0.3-v2",
    description="The data plane is reachable where login and metadata work",
)
def test_the_data_plane_is_reachable_where_login_and_metadata_work(
    vsphere: VsphereSession, vixdisklib: VixDiskLib, vddk_target: Target, resources: ResourceTracker
) -> None:
    vm_name = vddk_target.target_vms.get("VMFS") or next(iter(vddk_target.target_vms.values()), None)
    if vm_name is None:
        pytest.skip(f"target {vddk_target.name} names no source VM")
    transport = "nbdssl" if "nbdssl" in vddk_target.transports else vddk_target.transports[0]
    with vsphere.vm_lock(vm_name):
        vm = vsphere.vm(vm_name)
        name = resources.name("d4-data-plane")
        snapshot = vsphere.create_snapshot(vm, name, "D4: metadata over the API port, data over NFC")
        taken = resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
        try:
            disk = disks_of(snapshot)[0]  # metadata: over the API port, works either way
            problems = data_plane_problems(vsphere, vddk_target.data_plane_backend, vddk_target.nfc_port)
            params = vddk_target.connect_params(vm._moId)
            try:
                with (
                    vixdisklib.connected(params, True, snapshot._moId, transport) as connection,
                    vixdisklib.opened(connection, disk.file_name) as handle,
                ):
                    vixdisklib.read(handle, 0, 1)
            except VixError as exc:
                assert not problems, f"{problems[0]} -- and the disk Open failed as it must: {exc}"
                raise  # the data plane answered: the failure is the product's
            assert not problems, "\n".join(problems)  # a check that cries wolf would block healthy labs
        finally:
            resources.release(taken)
