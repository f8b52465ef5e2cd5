"""K6: HotAdd open of a disk whose name has special characters, with and without an NFC session.

VDDK 6.7.0 and 6.7.1, in HotAdd mode without an NFC session (``NoNfcSession=1``), read the disk through the
HTTP file service with the name encoded once; vSphere 6.7 GA and U1 decode names twice, so a name with a
percent sign is not found and Open fails. The reproducer backs up, over HotAdd with ``NoNfcSession=1``, a
clone of the target's VM whose name (and so its folder and disk names) has special characters; the
workaround ``nonfcsession-0`` does the same with an NFC session. Run with ``--vsphere 6.7``, ``6.7U1``,
``6.7U2``, ``7.0U3`` and ``--vddk-build 6.7.0``, ``6.7.1``, ``6.7.2``, ``7.0.3`` for the release notes' matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.lab.targets import CREATE_VMS, Target
from conformance.plugin.fixtures import require
from conformance.sequences.context import SequenceContext
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_NO_NFC_SESSION
from conformance.vsphere.session import VsphereSession
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.sequence("backup")]
#: suffixes of the clone's name. A second decoding changes only names that still hold percent escapes after
#: the first ("%41" becomes "A", "%20" a space); names with other special characters survive it, and the
#: file-service tests (test_k6_special_names.py) cover those.
SPECIAL_NAMES = {"percent": "a%41 100%", "encoded-space": "x%20y", "mixed": "R&D + [1] 50%25 ü"}


@pytest.fixture(params=list(SPECIAL_NAMES.values()), ids=list(SPECIAL_NAMES))
def special_vm(
    request: pytest.FixtureRequest, vddk_target: Target, vsphere: VsphereSession, sequence: SequenceContext
) -> str:
    """A run-named full clone of the target's VMFS VM whose name ends in special characters."""
    require(vddk_target, CREATE_VMS)
    source_name, datastore = vddk_target.target_vms.get("VMFS"), vddk_target.datastore_of_type("VMFS")
    if source_name is None or datastore is None:
        pytest.skip(f"target {vddk_target.name} has no VM on a VMFS datastore")
    name = f"{sequence.resources.name('k6')} {request.param}"
    clone = vsphere.clone_vm(vsphere.vm(source_name), name, datastore)
    sequence.resources.add("vm", name, lambda: vsphere.destroy_vm(clone))
    return name


def hotadd_backup(
    sequence: SequenceContext,
    back_up: BackUp,
    vixdisklib_factory: Callable[..., VixDiskLib],
    vm_name: str,
    no_nfc_session: int,
) -> set[str]:
    lib = vixdisklib_factory(config={KEY_NO_NFC_SESSION: no_nfc_session})
    through = dataclasses.replace(sequence, lib=lib)
    try:
        job = back_up(vm_name, "hotadd", ctx=through)
    except Exception as exc:
        failed = [r for r in lib.recorder.records() if r.call == "VixDiskLib_Open" and r.error is not None]
        if failed:  # K6's documented symptom, read from the library's own call trace
            symptom("K6", "Open in HotAdd mode failed for a name with special characters", observed=repr(exc))
        raise
    return job.transports


@pytest.mark.parametrize(
    "no_nfc_session",
    [
        pytest.param(
            1,
            marks=[
                pytest.mark.release_note("K6"),
                pytest.mark.test_id(
                    "K6-004",
                    uuid="21f52170-3443-4c27-9c52-1d7356f42217",
                    since="vddk-7.0.3-v2",
                    description="HotAdd opens a disk with special characters (NoNfcSession=1)",
                ),
            ],
            id="NoNfcSession=1",
        ),
        pytest.param(
            0,
            marks=[
                pytest.mark.release_note("K6", workaround="nonfcsession-0"),
                pytest.mark.test_id(
                    "K6-005",
                    uuid="dbc764ba-318a-42f3-ad99-c8121422d818",
                    since="vddk-7.0.3-v2",
                    description="HotAdd opens a disk with special characters (NoNfcSession=0, the workaround)",
                ),
            ],
            id="NoNfcSession=0",
        ),
    ],
)
def test_hotadd_opens_a_disk_with_special_characters(
    sequence: SequenceContext,
    back_up: BackUp,
    vixdisklib_factory: Callable[..., VixDiskLib],
    special_vm: str,
    no_nfc_session: int,
) -> None:
    assert hotadd_backup(sequence, back_up, vixdisklib_factory, special_vm, no_nfc_session) == {"hotadd"}
