"""The simulated VixDiskLib's own vSphere API client: login, lookups and hot-add/remove on the proxy.

Like the real library it talks to vCenter itself (ConnectEx logs in with the caller's credentials); it
remembers the certificate the server presented so that Open can compare it with the caller's thumbprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from pyVim import connect as pyvim_connect
from pyVim.task import WaitForTask
from pyVmomi import vim, vmodl

from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import ConnectParams, UidCredentials
from conformance.vsphere.connection import Endpoint, VsphereConnectError, connect
from conformance.vsphere.tls import pinned_client_context

TASK_TIMEOUT = 300
MOREF = re.compile(r"^(vm|snapshot)-\d+$")


def normalize_thumbprint(value: str | None) -> str:
    return (value or "").replace(":", "").strip().lower()


def presented_thumbprint(host: str, port: int, length: int = 40) -> str:
    """SHA-1 (or SHA-256 when the expected one is 64 hex digits) of the certificate the server presents."""
    context = pinned_client_context()  # compared with the caller's thumbprint, not a CA
    with socket.create_connection((host, port), timeout=30) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True) or b""
    return hashlib.new("sha256" if length == 64 else "sha1", der).hexdigest()


@dataclass
class ControlSession:
    """A logged-in vSphere API session of the library."""

    si: Any
    content: Any
    presented: str  # normalized thumbprint of the server certificate
    host: str
    port: int

    @property
    def cookie(self) -> str:
        raw = str(self.si._stub.cookie)
        match = re.search(r'vmware_soap_session="?([^";]+)', raw)
        return match.group(1) if match else raw

    def logout(self) -> None:
        with contextlib.suppress(Exception):
            pyvim_connect.Disconnect(self.si)

    def vm(self, moref: str) -> Any:
        vm = vim.VirtualMachine(moref, self.si._stub)
        try:
            _ = vm.name
        except vmodl.fault.ManagedObjectNotFound as exc:
            raise VixError(VixCode.VM_NOT_FOUND, "VixDiskLib_ConnectEx", f"no virtual machine {moref}") from exc
        return vm

    def snapshot(self, vm: Any, moref: str) -> Any:
        snapshot = vim.vm.Snapshot(moref, self.si._stub)
        try:
            owner = snapshot.vm
        except vmodl.fault.ManagedObjectNotFound as exc:
            raise VixError(VixCode.SNAPSHOT_NOTFOUND, "VixDiskLib_ConnectEx", f"no snapshot {moref}") from exc
        if owner._moId != vm._moId:
            raise VixError(
                VixCode.SNAPSHOT_NOTFOUND, "VixDiskLib_ConnectEx", f"{moref} is not a snapshot of {vm._moId}"
            )
        return snapshot

    def find_vm(self, name_or_moref: str) -> Any:
        if MOREF.match(name_or_moref):
            return self.vm(name_or_moref)
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.VirtualMachine], True)
        try:
            for vm in view.view:
                if vm.name == name_or_moref:
                    return vm
        finally:
            view.DestroyView()
        raise VixError(VixCode.VM_NOT_FOUND, "", f"proxy VM {name_or_moref!r} not found")

    def fetch_file_encoded_once(self, owner: Any, ds_path: str) -> bytes:
        """GET a datastore file through the HTTP file service, its name percent-encoded once (K6: how VDDK
        6.7.0/6.7.1 read a disk's descriptor in HotAdd mode without an NFC session). A server that decodes
        names twice (vSphere 6.7 GA/U1) finds another name, or none, for names with percent signs."""
        match = re.fullmatch(r"\[([^\]]+)\]\s*(.+)", ds_path.strip())
        if match is None:
            raise VixError(VixCode.INVALID_ARG, "VixDiskLib_Open", f"not a datastore path: {ds_path!r}")
        datacenter = owner
        while datacenter is not None and not isinstance(datacenter, vim.Datacenter):
            datacenter = datacenter.parent
        if datacenter is None:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open", f"no datacenter above {ds_path}")
        query = urllib.parse.urlencode({"dcPath": datacenter.name, "dsName": match.group(1)})
        url = f"/folder/{urllib.parse.quote(match.group(2))}?{query}"
        context = pinned_client_context()  # same server whose thumbprint was taken at login
        conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=30)
        try:
            conn.request("GET", url, headers={"Cookie": f'vmware_soap_session="{self.cookie}"'})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            raise VixError(VixCode.FILE_NOT_FOUND, "VixDiskLib_Open", f"{ds_path}: the file service has no such file")
        if response.status != 200:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open", f"{ds_path}: file service answered {response.status}")
        return body

    def dataplane_ports(self) -> dict[str, Any]:
        context = pinned_client_context()  # same server whose thumbprint was taken at login
        conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=30)
        try:
            conn.request("GET", "/sim/dataplane", headers={"Cookie": f'vmware_soap_session="{self.cookie}"'})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise VixError(VixCode.HOST_NOT_CONNECTED, "", f"the server offers no data plane ({response.status})")
        return dict(json.loads(body))

    def set_access(self, vm_moref: str, identity: str, disabled: bool, call: str) -> None:
        """PrepareForAccess / EndAccess: the server's DisableMethods over the vSphere API port (not NFC)."""
        context = pinned_client_context()  # same server whose thumbprint was taken at login
        conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=30)
        body = json.dumps({"vm": vm_moref, "identity": identity, "disabled": disabled})
        try:
            conn.request(
                "POST",
                "/sim/access",
                body=body,
                headers={"Cookie": f'vmware_soap_session="{self.cookie}"', "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            answer = response.read()
        finally:
            conn.close()
        if response.status == 404:
            raise VixError(VixCode.FILE_NOT_FOUND, call, f"no VM {vm_moref}")
        if response.status != 200:
            raise VixError(VixCode.FAIL, call, f"the server answered {response.status}: {answer[:200]!r}")

    # --- HotAdd ---

    def attach(self, proxy: Any, file_name: str, writable: bool, parents: list[str] | None = None) -> int:
        """Hot-add an existing disk file to the proxy VM; its device key. ``parents`` declares the disk's parent
        chain (nearest first) in the backing, as 7.0.3 does for vVol binding (K1)."""
        # a device key freed by another job's hot-remove meanwhile may be reused for this disk: the file names it
        before = {(d.key, d.backing.fileName) for d in disks_of(proxy)}
        mode = "persistent" if writable else "independent_nonpersistent"
        parent = None
        for name in reversed(parents or []):
            parent = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=name, diskMode=mode, parent=parent)
        device = vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=1000,
            unitNumber=-1,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file_name, diskMode=mode, parent=parent),
        )
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=device)])
        WaitForTask(proxy.ReconfigVM_Task(spec), maxWaitTime=TASK_TIMEOUT)
        added = [
            d.key
            for d in disks_of(proxy)
            if d.backing.fileName == file_name and (d.key, d.backing.fileName) not in before
        ]
        if not added:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open", f"hot-add of {file_name} to {proxy.name} did not show")
        return int(added[0])

    def detach(self, proxy: Any, device_key: int, file_name: str) -> bool:
        """Hot-remove a disk from the proxy; False if it was already gone. The key is checked against the file:
        once a disk is gone its key can be reused by another process's HotAdd on the same proxy."""
        device = next((d for d in disks_of(proxy) if d.key == device_key and d.backing.fileName == file_name), None)
        if device is None:
            return False
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)])
        WaitForTask(proxy.ReconfigVM_Task(spec), maxWaitTime=TASK_TIMEOUT)
        return True


def disks_of(owner: Any) -> list[Any]:
    return [d for d in owner.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def parent_chain(owner: Any, file_name: str) -> list[str]:
    """The parent links (nearest first) of the disk of a VM or snapshot whose backing is ``file_name``."""
    for device in disks_of(owner):
        if device.backing.fileName == file_name:
            chain, parent = [], device.backing.parent
            while parent is not None:
                chain.append(str(parent.fileName))
                parent = parent.parent
            return chain
    return []


def folder_of(ds_path: str) -> str:
    """'[ds] dir/file.vmdk' -> '[ds] dir'."""
    return ds_path.rsplit("/", 1)[0] if "/" in ds_path else ds_path


def declared_parents_with_k1(file_name: str, chain: list[str]) -> list[str]:
    """K1, the 7.0.3 regression: the parent chain 7.0.3 declares when it hot-adds a disk keeps the links of the
    disk's own folder and of the first foreign folder (a linked clone's source), and drops links further up
    (the source's own source). Harmless for a linked clone of a full VM; a linked clone of a linked clone
    loses a link, which a vVol datastore cannot bind."""
    folders = [folder_of(file_name)]
    declared: list[str] = []
    for link in chain:
        folder = folder_of(link)
        if folder not in folders:
            if len(folders) == 2:
                break
            folders.append(folder)
        declared.append(link)
    return declared


def login(params: ConnectParams, call: str) -> ControlSession:
    """Log in to params.server_name with the caller's credentials (VIX errors as the library reports them)."""
    if not params.server_name:
        raise VixError(VixCode.INVALID_ARG, call, "serverName is required for a remote connection")
    creds = params.credentials
    if not isinstance(creds, UidCredentials) or not creds.user:
        raise VixError(VixCode.INVALID_ARG, call, "user name and password credentials (credType UID) are required")
    expected = normalize_thumbprint(params.thumbprint)
    try:
        presented = presented_thumbprint(params.server_name, params.port, len(expected) or 40)
        si = connect(Endpoint(params.server_name, params.port, presented), creds.user, creds.password)
    except VsphereConnectError as exc:
        raise VixError(VixCode.AUTHENTICATION_FAIL, call, f"login as {creds.user} refused") from exc
    except OSError as exc:
        raise VixError(VixCode.CANNOT_CONNECT_TO_HOST, call, f"{params.server_name}:{params.port}: {exc}") from exc
    return ControlSession(si, si.RetrieveContent(), presented, params.server_name, params.port)
