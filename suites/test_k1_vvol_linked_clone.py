"""K1: a HotAdd backup of a linked clone made from a linked clone on vVol can make the proxy VM invalid.

A regression from 7.0.2 to 7.0.3. Every variant backs up the same shape of VM and then checks the one
behaviour the notes care about: the proxy VM is still valid (runtime.connectionState "connected") and the
backup used the transport it asked for. The reproducer is a linked clone of a linked clone on vVol over
HotAdd; the workarounds make the linked clone from a full-clone source, or use another transport; the control
case repeats the reproducer on VMFS, where the notes say it passes. Should a variant break the shared proxy,
the tracker reloads the proxy's configuration at teardown, so the tests after it find a valid proxy.

The known issue's symptom is the server's view of the proxy (``runtime.connectionState`` "invalid", read through
pyVmomi after the backup, whether or not the backup raised): only that is the known issue. A backup that fails
while the proxy stays valid is the backup application's failure; a target without a HotAdd proxy skips.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.sequences.context import SequenceContext
from conformance.vsphere.session import VsphereSession
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.sequence("backup")]


def linked_clone(vsphere: VsphereSession, resources: ResourceTracker, source_name: str, purpose: str) -> str:
    """A run-named linked clone of ``source_name`` over a new snapshot of it (both undone by the tracker)."""
    source = vsphere.vm(source_name)
    snapshot_name = resources.name(f"{purpose}-base")
    snapshot = vsphere.create_snapshot(source, snapshot_name, "vddk-conformance linked-clone base", quiesce=False)
    resources.add("snapshot", snapshot_name, lambda: vsphere.remove_snapshot(snapshot, snapshot_name))
    name = resources.name(purpose)
    clone = vsphere.clone_vm(source, name, snapshot=snapshot)
    resources.add("vm", name, lambda: vsphere.destroy_vm(clone))
    return name


def guard_proxy(vsphere: VsphereSession, resources: ResourceTracker, proxy_name: str) -> None:
    """Teardown repairs a proxy a variant made invalid (reload its configuration), so later tests can use it."""

    def repair() -> None:
        proxy = vsphere.vm(proxy_name)
        if proxy.runtime.connectionState == "invalid":
            proxy.Reload()

    resources.add("proxy-check", proxy_name, repair)


def proxy_state(vsphere: VsphereSession, proxy_name: str) -> str:
    return str(vsphere.vm(proxy_name).runtime.connectionState)


@pytest.fixture
def proxy(sequence: SequenceContext, vsphere: VsphereSession, vddk_target: Target) -> str:
    if sequence.proxy_vm is None:
        pytest.skip(f"target {vddk_target.name} has no HotAdd proxy VM")
    assert proxy_state(vsphere, sequence.proxy_vm) == "connected", "the proxy is invalid before the test"
    guard_proxy(vsphere, sequence.resources, sequence.proxy_vm)
    return sequence.proxy_vm


@pytest.fixture
def clone_of_clone(
    fresh_vm: Callable[..., str], vsphere: VsphereSession, sequence: SequenceContext
) -> Callable[..., str]:
    """A linked clone of a linked clone of a fresh VM on a datastore type."""

    def make(datastore_type: str) -> str:
        first = linked_clone(vsphere, sequence.resources, fresh_vm(datastore_type), "lc1")
        return linked_clone(vsphere, sequence.resources, first, "lc2")

    return make


def back_up_keeping_the_proxy_valid(
    back_up: BackUp,
    vsphere: VsphereSession,
    proxy: str,
    vm_name: str,
    transport: str,
) -> None:
    """Back up ``vm_name``; an invalid proxy afterwards is K1's symptom, whatever the backup itself did."""
    try:
        used = back_up(vm_name, transport).transports
    except Exception as exc:
        if proxy_state(vsphere, proxy) == "invalid":
            symptom("K1", "the HotAdd backup left the proxy VM invalid", observed=f"the backup raised {exc!r}")
        raise
    if proxy_state(vsphere, proxy) == "invalid":
        symptom("K1", "the HotAdd backup left the proxy VM invalid", observed="connectionState 'invalid'")
    assert used == {transport}


LINKED_CLONE = "Backing up a linked clone of a linked clone keeps the proxy valid"
REPRODUCER = [
    pytest.mark.release_note("K1"),
    pytest.mark.test_id(
        "K1-001",
        uuid="26a64d56-aa1a-4217-a269-feba4d6d86bb",
        since="vddk-7.0.3-v1",
        description=f"{LINKED_CLONE} (vVol, HotAdd)",
    ),
]
OTHER_TRANSPORT = [
    pytest.mark.release_note("K1", workaround="non-hotadd-transport"),
    pytest.mark.test_id(
        "K1-003",
        uuid="24d136df-5924-4440-8242-a302a4509603",
        since="vddk-7.0.3-v1",
        description=f"{LINKED_CLONE} (vVol, NBD and NBDSSL)",
    ),
]
ON_VMFS = [
    pytest.mark.release_note("K1", control="vmfs-datastore"),
    pytest.mark.test_id(
        "K1-004",
        uuid="ef7d12ba-ad56-464f-a662-07ba2297abe7",
        since="vddk-7.0.3-v1",
        description=f"{LINKED_CLONE} (VMFS, HotAdd)",
    ),
]


@pytest.mark.parametrize(
    ("datastore_type", "transport"),
    [
        pytest.param("VVOL", "hotadd", marks=REPRODUCER, id="vvol-hotadd"),
        *(pytest.param("VVOL", t, marks=OTHER_TRANSPORT, id=f"vvol-{t}") for t in ("nbdssl", "nbd")),
        pytest.param("VMFS", "hotadd", marks=ON_VMFS, id="vmfs-hotadd"),
    ],
)
def test_backing_up_a_linked_clone_of_a_linked_clone_keeps_the_proxy_valid(
    back_up: BackUp,
    vsphere: VsphereSession,
    proxy: str,
    clone_of_clone: Callable[..., str],
    datastore_type: str,
    transport: str,
) -> None:
    back_up_keeping_the_proxy_valid(back_up, vsphere, proxy, clone_of_clone(datastore_type), transport)
    assert proxy_state(vsphere, proxy) == "connected"


@pytest.mark.release_note("K1", workaround="full-clone-source")
@pytest.mark.test_id(
    "K1-002",
    uuid="926ecc43-a904-4445-a8bc-3fa6deacc576",
    since="vddk-7.0.3-v1",
    description="A linked clone of a full clone on vvol backs up with hotadd",
)
def test_a_linked_clone_of_a_full_clone_on_vvol_backs_up_with_hotadd(
    sequence: SequenceContext,
    back_up: BackUp,
    vsphere: VsphereSession,
    proxy: str,
    fresh_vm: Callable[..., str],
) -> None:
    target = linked_clone(vsphere, sequence.resources, fresh_vm("VVOL"), "lc1")  # fresh_vm is a full clone
    back_up_keeping_the_proxy_valid(back_up, vsphere, proxy, target, "hotadd")
    assert proxy_state(vsphere, proxy) == "connected"
