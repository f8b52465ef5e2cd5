"""How the simulated VixDiskLib opens a disk over each transport (file, san, hotadd, nbd, nbdssl).

Why apart from library.py: the transports are where builds differ most (C2's SAN refusal on vSAN and vVols, F2's
HotAdd refusal, K1's linked-clone parents, K6's descriptor fetch, the NFC AIO keys) and where a HotAdd is
attached and recorded for Cleanup; the library keeps the calls and their order. A refusal
(`TransportRefusedError`) makes Open try the next mode; any other error fails Open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pyVmomi import vim

from conformance.sim.dataplane import DataPlaneClient, DataPlaneError, ThumbprintMismatch
from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.config import AIO_SESSION_LIMIT, VddkConfig
from conformance.vixdisklib.errors import VixCode, VixError, error_text
from conformance.vixdisklib.simulated.behaviour import BuildBehaviour
from conformance.vixdisklib.simulated.control import (
    ControlSession,
    declared_parents_with_k1,
    disks_of,
    parent_chain,
)
from conformance.vixdisklib.simulated.disk import DIRECT_REQUEST, SimDisk, map_dataplane_error
from conformance.vixdisklib.simulated.support import hotadd_refusal
from conformance.vixdisklib.simulated.tmpstate import HotAddedDisk, SessionFolder
from conformance.vixdisklib.types import ConnectParams

#: refusals that make Open try the next transport rather than fail
TRANSPORT_REFUSALS = (
    "transport_unsupported",
    "san_unsupported_datastore",
    "not_zoned",
    "san_redo_write",
    "not_attached",
)


class TransportRefusedError(Exception):
    """This transport cannot open this disk; Open tries the next one."""


class LibrarySettings(Protocol):
    """What the transports read of the library (SimulatedVixDiskLib); `config` changes at InitEx."""

    build: str
    behaviour: BuildBehaviour
    config: VddkConfig
    proxy_vm: str | None
    physical_proxy: str | None
    sim_faults: frozenset[str]


@dataclass
class SimConnection:
    """One ConnectEx: its vSphere session, VM and snapshot, session folder, HotAdds and data-plane clients."""

    params: ConnectParams
    read_only: bool
    modes: list[str]
    control: ControlSession | None = None
    vm: Any = None
    snapshot: Any = None
    folder: SessionFolder | None = None
    hot_added: list[HotAddedDisk] = field(default_factory=list)
    clients: list[DataPlaneClient] = field(default_factory=list)
    ports: dict[str, Any] = field(default_factory=dict)


class Transports:
    """Open over one transport mode, or refuse it; release a HotAdd."""

    def __init__(self, lib: LibrarySettings) -> None:
        self.lib = lib

    def open_local(self, path: str, writable: bool) -> SimDisk:
        local_path = Path(path)
        if not local_path.is_absolute() or not local_path.exists():
            raise VixError(VixCode.FILE_NOT_FOUND, "VixDiskLib_Open", f"{path} (local disks need an absolute path)")
        file = VirtualDiskFile.open(local_path)
        return SimDisk(
            path,
            "file",
            file.capacity,
            self.lib.behaviour,
            writable,
            local=file,
            info={
                "uuid": file.uuid,
                "num_links": len(file.chain()),
                "parent_hint": file.parent.path.name if file.parent else None,
            },
        )

    def open_with(self, connection: SimConnection, mode: str, path: str, writable: bool) -> SimDisk:
        if mode == "file":
            raise TransportRefusedError("needs a local disk")
        if mode == "san":
            return self._open_san(connection, path, writable)
        if mode == "hotadd":
            return self._open_hotadd(connection, path, writable)
        if mode in ("nbd", "nbdssl"):
            if self.lib.behaviour.nfc_aio_keys and self.lib.config.aio_session_bytes > AIO_SESSION_LIMIT:
                raise VixError(
                    VixCode.INVALID_ARG,
                    "VixDiskLib_Open",
                    f"NFC AIO session memory {self.lib.config.aio_session_bytes} bytes (BufSizeIn64KB x "
                    "BufCount x 64 KiB) exceeds 16 MiB",
                )
            disk = self.open_remote(connection, mode, path, writable)
            if self.lib.behaviour.nfc_aio_keys:
                disk.chunk = self.lib.config.aio_buf_size_64k * 64 * 1024
                disk.in_flight = self.lib.config.aio_buf_count
            else:
                disk.chunk, disk.in_flight = 64 * 1024, 4
            return disk
        raise TransportRefusedError(f"unknown transport mode {mode!r}")

    def _open_san(self, connection: SimConnection, path: str, writable: bool) -> SimDisk:
        if not self.lib.physical_proxy:
            raise TransportRefusedError("this proxy has no SAN access (not a physical proxy)")
        ds_type = _datastore_type(connection, path)
        if ds_type in ("vsan", "VVOL") and self.lib.behaviour.san_rejected_on_vsan_vvol:
            raise TransportRefusedError(f"SAN transport is not supported on {ds_type} datastores")
        if ds_type in ("vsan", "VVOL"):
            # builds before 6.7 do not refuse up front: Open succeeds and the I/O fails
            info = _disk_info_from_vsphere(connection, path)
            return SimDisk(
                path,
                "san",
                info["capacity"],
                self.lib.behaviour,
                writable,
                info=info,
                deferred_error=VixError(VixCode.DISK_NOIO, "", f"SAN I/O failed on a {ds_type} datastore"),
            )
        return self.open_remote(connection, "san", path, writable, chunk=DIRECT_REQUEST)

    def _open_hotadd(self, connection: SimConnection, path: str, writable: bool) -> SimDisk:
        if not self.lib.proxy_vm:
            raise TransportRefusedError("not running in a proxy VM")
        assert connection.control is not None and connection.folder is not None
        proxy = connection.control.find_vm(self.lib.proxy_vm)
        refusal = hotadd_refusal(self.lib.build, proxy)  # F2
        if refusal is not None:
            raise TransportRefusedError(refusal)
        if "transport-silently-replaced" in self.lib.sim_faults:  # no HotAdd at all: nbd, labelled hotadd
            disk = self.open_remote(connection, "nbd", path, writable)
            disk.transport = "hotadd"
            return disk
        if self.lib.behaviour.hotadd_special_names_broken and self.lib.config.no_nfc_session:
            connection.control.fetch_file_encoded_once(connection.vm, path)  # K6: the descriptor, without NFC
        parents = None
        if self.lib.behaviour.vvol_linked_clone_hotadd_bug:
            owner = connection.snapshot if connection.snapshot is not None and not writable else connection.vm
            parents = declared_parents_with_k1(path, parent_chain(owner, path))
        try:
            key = connection.control.attach(proxy, path, writable, parents)
        except vim.fault.InvalidDeviceBacking as exc:
            detail = getattr(exc, "msg", exc)
            raise VixError(VixCode.FAIL, "VixDiskLib_Open", f"HotAdd of {path} failed: {detail}") from exc
        except vim.fault.FileLocked as exc:  # another hot-add holds the disk's lock (a killed backup's leftover)
            detail = getattr(exc, "msg", exc)
            raise VixError(
                VixCode.FILE_ALREADY_LOCKED, "VixDiskLib_Open", f"HotAdd of {path} failed: {detail}"
            ) from exc
        record = HotAddedDisk(proxy._moId, path, key)
        connection.hot_added.append(record)
        connection.folder.record_hot_added(connection.hot_added)
        try:
            disk = self.open_remote(connection, "hotadd", path, writable, chunk=DIRECT_REQUEST, proxy=proxy._moId)
        except BaseException:
            self.release(connection, record, proxy)
            raise
        disk.hot_added = (proxy, key)
        return disk

    def open_remote(
        self,
        connection: SimConnection,
        transport: str,
        path: str,
        writable: bool,
        chunk: int = DIRECT_REQUEST,
        proxy: str | None = None,
    ) -> SimDisk:
        assert connection.control is not None
        config, behaviour = self.lib.config, self.lib.behaviour
        tls = transport != "nbd"
        port = connection.ports["nbdssl_port" if tls else "nbd_port"]
        try:
            client = DataPlaneClient(
                connection.control.host, int(port), tls=tls, thumbprint=connection.params.thumbprint
            )
        except ThumbprintMismatch as exc:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open") from exc
        except OSError as exc:
            # The host's NFC port cannot be reached (a firewall passing 443 but not 902, D4). Every build modelled
            # here (up to 7.0.3) reports that at Open as VIX_E_FILE_ACCESS_ERROR (13): only 7.0.3.3 started
            # returning the network error itself (14009), per its release notes. The address goes in the text, as
            # the library's log names it.
            where = f"{connection.control.host}:{port}"
            raise VixError(
                VixCode.FILE_ACCESS_ERROR,
                "VixDiskLib_Open",
                f"{error_text(VixCode.FILE_ACCESS_ERROR)} (cannot connect to the NFC port {where}: "
                f"{exc.strerror or exc})",
            ) from exc
        try:
            client.hello(
                connection.control.cookie,
                transport,
                proxy_vm=proxy,
                physical_proxy=self.lib.physical_proxy,
                client={
                    "product": config.product_name or "Unknown",
                    "version": config.product_version or "Unknown",
                    "phone_home": config.enable_phone_home,
                    "phone_home_via": "server" if behaviour.phone_home_via_server else "library",
                },
                aio={"buf_size_64k": config.aio_buf_size_64k, "buf_count": config.aio_buf_count},
                opens=("disk" if behaviour.hotadd_opens_disk else "adapter") if transport == "hotadd" else None,
                vsan_needs_vsan_proxy=behaviour.vsan_hotadd_needs_vsan_proxy if transport == "hotadd" else None,
            )
            snapshot = connection.snapshot._moId if connection.snapshot is not None and not writable else None
            reply = client.open(vm=connection.vm._moId, path=path, snapshot=snapshot, write=writable)
        except DataPlaneError as exc:
            client.shutdown()
            if exc.kind in TRANSPORT_REFUSALS:
                raise TransportRefusedError(exc.message) from exc
            raise map_dataplane_error(exc, behaviour, "VixDiskLib_Open") from exc
        connection.clients.append(client)
        return SimDisk(
            path,
            transport,
            int(reply["capacity"]),
            self.lib.behaviour,
            writable,
            client=client,
            handle=reply["handle"],
            info=reply,
            chunk=chunk,
        )

    def release(self, connection: SimConnection, record: HotAddedDisk, proxy: Any) -> None:
        assert connection.control is not None and connection.folder is not None
        connection.control.detach(proxy, record.device_key, record.file_name)
        connection.hot_added.remove(record)
        connection.folder.record_hot_added(connection.hot_added)


def _datastore_type(connection: SimConnection, path: str) -> str:
    assert connection.control is not None
    name = path.strip()[1:].split("]", 1)[0]
    for ds in connection.vm.datastore:
        if ds.name == name:
            return str(ds.summary.type)
    return "unknown"


def _disk_info_from_vsphere(connection: SimConnection, path: str) -> dict[str, Any]:
    owner = connection.snapshot or connection.vm
    for disk in disks_of(owner):
        if disk.backing.fileName == path:
            return {"capacity": int(disk.capacityInBytes), "uuid": disk.backing.uuid, "num_links": 1}
    raise VixError(VixCode.FILE_NOT_FOUND, "VixDiskLib_Open", path)
