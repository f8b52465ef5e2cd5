"""K6: names with special characters and the HTTP file service of vSphere 6.7 before U2.

The file service of vSphere 6.7 GA and U1 decodes names twice, every other release once; code that downloads
through it must decode adaptively. This is the workaround ``adaptive-decoding``: the harness's own download
(``conformance.vsphere.files``) probes how the run's server decodes names and encodes each name to match.
Files are first put on the target's VMFS datastore with PUT (names encoded the same way), then downloaded;
names cover space, %, &, +, #, brackets and non-ASCII, in a folder whose name has special characters too,
and a pair of names that a wrongly encoded request confuses (``a%41`` decoded twice is ``aA``). The server
version is the run's (``--vsphere``: run with 6.7, 6.7U1, 6.7U2 and 7.0U3). The HotAdd x NoNfcSession matrix
of the item is the preflight's (``tests/test_preflight.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.vsphere.files import HttpFiles
from conformance.vsphere.session import VsphereSession

pytestmark = [pytest.mark.release_note("K6", workaround="adaptive-decoding")]

DATASTORE_TYPE = "VMFS"
NAMES = [
    "with space.txt",
    "100% sure.txt",
    "a%41.txt",  # a literal %41: once too often decoded it is "aA.txt"
    "R&D.txt",
    "a+b=c.txt",
    "no #1.txt",
    "[brackets] {braces} (parens).txt",
    "Ünïcødé 日本語 ✓.txt",
    "all of them %20 & + # [] ü.vmdk",
]
FOLDER_SPECIAL = "dir [1] #2 & 50%"
#: pairs of different files that an encoding error would confuse
LOOKALIKES = [("a%41.txt", "aA.txt"), ("x%2520y.txt", "x%20y.txt"), ("p%2Bq.txt", "p+q.txt")]


def content_for(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest() * 64 + name.encode()


@dataclass
class Folder:
    files: HttpFiles
    datastore: str
    path: str  # a run-named folder on the datastore


@pytest.fixture
def folder(vddk_target: Target, vsphere: VsphereSession, resources: ResourceTracker) -> Folder:
    """A run-named folder with a plain-named file in it, on which the service's decoding is probed."""
    datastore = vddk_target.datastore_of_type(DATASTORE_TYPE)
    if datastore is None:
        pytest.skip(f"target {vddk_target.name} has no {DATASTORE_TYPE} datastore")
    files = HttpFiles.for_session(vsphere, vddk_target.endpoint, vddk_target.datacenter)
    path = resources.name("k6")
    files.put(datastore, f"{path}/probe.txt", b"probe")  # a plain name: encoded the same once or twice
    assert files.decodings(datastore, f"{path}/probe.txt") in (1, 2)
    return Folder(files, datastore, path)


@pytest.mark.test_id(
    "K6-001",
    uuid="ddc23772-2545-4cc1-a3a0-bce406c84fea",
    since="vddk-7.0.3-v1",
    description="A file with special characters downloads as uploaded",
)
@pytest.mark.parametrize("name", NAMES)
def test_a_file_with_special_characters_downloads_as_uploaded(folder: Folder, name: str) -> None:
    path = f"{folder.path}/{name}"
    folder.files.put(folder.datastore, path, content_for(name))
    assert folder.files.download(folder.datastore, path) == content_for(name)


@pytest.mark.test_id(
    "K6-002",
    uuid="7631e569-7a11-4cf2-9bf9-41ca5c5c4302",
    since="vddk-7.0.3-v1",
    description="A file in a folder with special characters downloads",
)
@pytest.mark.parametrize("name", NAMES[:3] + NAMES[-1:])
def test_a_file_in_a_folder_with_special_characters_downloads(folder: Folder, name: str) -> None:
    path = f"{folder.path}/{FOLDER_SPECIAL}/{name}"
    folder.files.put(folder.datastore, path, content_for(name))
    assert folder.files.download(folder.datastore, path) == content_for(name)


@pytest.mark.test_id(
    "K6-003",
    uuid="fcd5367b-569d-4629-901d-bd5f9f05867f",
    since="vddk-7.0.3-v1",
    description="Names that differ only in encoding download their own file",
)
@pytest.mark.parametrize(("name", "lookalike"), LOOKALIKES)
def test_names_that_differ_only_in_encoding_download_their_own_file(folder: Folder, name: str, lookalike: str) -> None:
    for each in (lookalike, name):
        folder.files.put(folder.datastore, f"{folder.path}/{each}", content_for(each))
    assert folder.files.download(folder.datastore, f"{folder.path}/{name}") == content_for(name)
    assert folder.files.download(folder.datastore, f"{folder.path}/{lookalike}") == content_for(lookalike)
