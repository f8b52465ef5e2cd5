"""vSphere profiles and inventories are data; bad data is one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.sim.inventory import InventoryError, InventorySpec, load_inventory
from conformance.sim.profiles import UnknownProfileError, all_profiles, get_profile
from conformance.vsphere.connection import Endpoint, connect

REQUIRED = [
    "6.5",
    "6.7",
    "6.7U1",
    "6.7U2",
    "6.7U3",
    "7.0",
    "7.0U1",
    "7.0U2",
    "7.0U3",
    "8.0",
    *(f"M{n}" for n in range(8, 17)),
]


def test_every_required_profile_exists() -> None:
    assert set(REQUIRED) <= set(all_profiles())


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("7.0 U3", "7.0U3"),
        ("7.0u3", "7.0U3"),
        ("7.0.3", "7.0U3"),
        ("vSphere 6.7 Update 1", "6.7U1"),
        ("m16", "M16"),
        ("8.0", "8.0"),
    ],
)
def test_version_spellings_resolve(spelling: str, name: str) -> None:
    assert get_profile(spelling).name == name


def test_unknown_version_lists_the_known_ones() -> None:
    with pytest.raises(UnknownProfileError, match=r"unknown vSphere version '9\.9': use one of 6\.5"):
        get_profile("9.9")


def test_profile_flags_follow_the_release_notes() -> None:
    assert [n for n in REQUIRED if get_profile(n).http_double_decode] == ["6.7", "6.7U1"]
    preserving = [n for n in REQUIRED if get_profile(n).default_profile_preserves_cbt]
    assert preserving == ["7.0U3", "8.0", "M16"]


def names(content: Any, kind: Any) -> list[str]:
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    return sorted(o.name for o in view.view)


def test_default_inventory_has_what_the_suites_need(content: Any) -> None:
    assert names(content, vim.Datacenter) == ["dc1"]
    assert names(content, vim.ClusterComputeResource) == ["cluster1"]
    assert len(names(content, vim.HostSystem)) >= 3
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.Datastore], True)
    assert {ds.summary.type for ds in view.view} >= {"VMFS", "NFS", "NFS41", "vsan", "VVOL"}
    vms = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True).view
    guests = {vm.guest.guestFullName for vm in vms}
    for wanted in (
        "Red Hat Enterprise Linux 8.3",
        "CentOS Linux 8.3",
        "SUSE Linux Enterprise Server 15 SP1",
        "Microsoft Windows Server 2019",
    ):
        assert any(g.startswith(wanted) for g in guests), wanted


def test_a_test_can_declare_its_own_inventory() -> None:
    spec = (
        InventorySpec(hosts=["h1"])
        .datastore("small", "NFS41", 2**30)
        .vm("only-vm", "small", disks=[2**20, 2**21], power_on=False)
    )
    with Simulator(inventory=spec) as sim:
        content = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password).RetrieveContent()
        vm = content.searchIndex.FindByInventoryPath("dc1/vm/only-vm")
        disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        assert [d.capacityInBytes for d in disks] == [2**20, 2**21]
        assert vm.runtime.powerState == "poweredOff"
        assert names(content, vim.Datastore) == ["small"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('datastores = [{name = "a", type = "FAT32"}]', "type 'FAT32' is not one of"),
        (
            'datastores = [{name = "a", type = "VMFS"}]\n'
            'vms = [{name = "v", datastore = "b", host = "esx-01.sim.local"}]',
            "datastore 'b' is not declared",
        ),
        ('vms = [{name = "v", datastore = "a", colour = "red"}]', "unknown field 'colour'"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_inventory_files_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory(path)
    assert "\n" not in str(caught.value)
