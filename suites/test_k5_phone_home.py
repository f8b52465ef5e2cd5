"""K5: phone-home settings. EnablePhoneHome=1 does nothing in vSphere 7.0; backup software names itself with
vixDiskLib.phoneHome.ProductName, .ProductVersion and .DatabaseDir (the workaround), or shows as "Unknown".

The harness's own InitEx configuration check accepts the legal values (letters, digits, underscore, minus,
period and space; double quotes mandatory when a value contains a space) and rejects the others before any
connection is made. The server records the vendor name each data-plane client sent.

Reading what the server recorded comes through the target: one with the SERVER_RECORDS capability offers
`controls.dataplane_clients()` (the server's own records of each client); a target without it skips naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from conformance.plugin.fixtures import require
from conformance.targets import SERVER_RECORDS, Target
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import (
    KEY_DATABASE_DIR,
    KEY_PHONE_HOME,
    KEY_PRODUCT_NAME,
    KEY_PRODUCT_VERSION,
    parse_config,
)
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.release_note("K5", workaround="phonehome-vendor-keys")]
PHONE_HOME_KEYS = [KEY_PRODUCT_NAME, KEY_PRODUCT_VERSION, KEY_DATABASE_DIR]
VALID = {
    "letters": "AcmeBackup",
    "digits": "2021",
    "underscore-minus-period": "Acme_Backup-7.0.3",
    "quoted-space": '"Acme Backup"',
    "quoted-without-space": '"AcmeBackup"',
}
INVALID = {
    "unquoted-space": "Acme Backup",
    "slash": "Acme/Backup",
    "ampersand": "Acme&Co",
    "colon": "Acme:1",
    "apostrophe": "Acme's",
    "non-ascii": "Acmé",
    "tab": '"Acme\tBackup"',
    "quote-inside": '"Acme"Backup"',
    "unclosed-quote": '"Acme Backup',
}
VENDOR, VENDOR_VERSION = f"Acme Backup {uuid.uuid4().hex[:8]}", "7.0.3-1"
VENDOR_KEYS = {KEY_PRODUCT_NAME: VENDOR, KEY_PRODUCT_VERSION: VENDOR_VERSION, KEY_DATABASE_DIR: "acme_db"}


def problems(key: str, raw_value: str) -> list[str]:
    return [str(p) for p in parse_config(f"{key} = {raw_value}\n").problems()]


@pytest.mark.test_id("K5-001")
@pytest.mark.parametrize("key", PHONE_HOME_KEYS)
@pytest.mark.parametrize("raw_value", list(VALID.values()), ids=list(VALID))
def test_config_check_accepts_a_legal_phone_home_value(key: str, raw_value: str) -> None:
    assert problems(key, raw_value) == []


@pytest.mark.test_id("K5-002")
@pytest.mark.parametrize("key", PHONE_HOME_KEYS)
@pytest.mark.parametrize("raw_value", list(INVALID.values()), ids=list(INVALID))
def test_config_check_rejects_an_illegal_phone_home_value(key: str, raw_value: str) -> None:
    assert len(problems(key, raw_value)) == 1


def recorded_clients(target: Target) -> list[dict[str, Any]]:
    """Every data-plane client the server has recorded: product, version, phone_home, transport, session."""
    clients: list[dict[str, Any]] = target.controls.dataplane_clients()
    return clients


@pytest.mark.test_id("K5-003")
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(VENDOR_KEYS, (VENDOR, VENDOR_VERSION), id="keys-set"),
        pytest.param({}, ("Unknown", "Unknown"), id="keys-unset"),
    ],
)
def test_server_records_the_vendor_name_it_received(
    vixdisklib_factory: Callable[..., VixDiskLib],
    vddk_target: Target,
    vsphere: VsphereSession,
    config: dict[str, str],
    expected: tuple[str, str],
) -> None:
    require(vddk_target, SERVER_RECORDS)
    vm_name = vddk_target.target_vms.get("VMFS")
    if vm_name is None:
        pytest.skip(f"target {vddk_target.name} has no VM on a VMFS datastore")
    clients = clients_of_one_read(vixdisklib_factory(config=config), vddk_target, vsphere, vm_name)
    assert [(c["product"], c["version"]) for c in clients] == [expected]


def clients_of_one_read(lib: VixDiskLib, target: Target, vsphere: VsphereSession, vm_name: str) -> list[dict[str, Any]]:
    """What the server recorded for one NBDSSL open and read of the VM's first disk with ``lib``."""
    vm = vsphere.vm(vm_name)
    before = len(recorded_clients(target))
    with (
        lib.connected(target.connect_params(vm._moId), True, None, "nbdssl") as connection,
        lib.opened(connection, disks_of(vm)[0].file_name) as disk,
    ):
        lib.read(disk, 0, 1)
    return recorded_clients(target)[before:]


@pytest.mark.release_note("K5")
@pytest.mark.test_id("K5-004")
def test_enable_phone_home_reaches_the_server(
    vixdisklib_factory: Callable[..., VixDiskLib], vddk_target: Target, vsphere: VsphereSession
) -> None:
    """The reproducer: EnablePhoneHome=1 alone must turn phone home on (vSphere 7.0.x ignores it with VDDK 7.0)."""
    require(vddk_target, SERVER_RECORDS)
    vm_name = vddk_target.target_vms.get("VMFS")
    if vm_name is None:
        pytest.skip(f"target {vddk_target.name} has no VM on a VMFS datastore")
    lib = vixdisklib_factory(config={KEY_PHONE_HOME: 1})
    assert [c["phone_home"] for c in clients_of_one_read(lib, vddk_target, vsphere, vm_name)] == [True]
