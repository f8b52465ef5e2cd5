"""One simulated vCenter/ESXi: its state directory, objects, HTTPS server and the context they share."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from pyVmomi import VmomiSupport, vim, vmodl

from conformance.ownership import owned_temp_dir, write_owner
from conformance.sim import tls
from conformance.sim.faults import FaultHooks
from conformance.sim.inventory import InventorySpec, build_inventory, default_inventory
from conformance.sim.profiles import VsphereProfile, get_profile
from conformance.sim.registry import ObjectRegistry, declared_type, typed
from conformance.sim.soap import SoapCall
from conformance.sim.storage.vmdk import close_all_under

log = logging.getLogger("conformance.sim")

DEFAULT_USER = "administrator@vsphere.local"


class SimContext:
    """Everything the managed objects of one simulator share; they reach it as `self.ctx`."""

    def __init__(self, profile: VsphereProfile, state_dir: Path, user: str, password: str) -> None:
        from conformance.sim.objects.event_manager import EventManagerImpl
        from conformance.sim.objects.folder import FolderImpl
        from conformance.sim.objects.property_collector import PropertyCollectorImpl
        from conformance.sim.objects.search_index import SearchIndexImpl
        from conformance.sim.objects.service_instance import ServiceInstanceImpl
        from conformance.sim.objects.session_manager import SessionManagerImpl
        from conformance.sim.objects.task import TaskManagerImpl
        from conformance.sim.objects.view_manager import ViewManagerImpl

        self.profile = profile
        self.state_dir = state_dir
        self.faults = FaultHooks()
        self.instance_uuid = str(uuid.uuid4())
        self.certificate = tls.generate(state_dir / "tls")
        self.registry = ObjectRegistry(self)
        self.service_instance = ServiceInstanceImpl(self.registry)
        self.session_manager = SessionManagerImpl(self.registry, user, password)
        self.property_collector = PropertyCollectorImpl(self.registry, "propertyCollector")
        self.view_manager = ViewManagerImpl(self.registry)
        self.task_manager = TaskManagerImpl(self.registry)
        self.event_manager = EventManagerImpl(self.registry)
        self.search_index = SearchIndexImpl(self.registry)
        self.root_folder = FolderImpl(self.registry, "Datacenters", ["Folder", "Datacenter"], None, "group-d1")
        # Optional services; modules that provide them set these when they are registered.
        self.file_manager: Any = None
        self.virtual_disk_manager: Any = None
        self.guest_operations_manager: Any = None
        self.vstorage_object_manager: Any = None
        self.custom_fields_manager: Any = None
        self.file_service: Any = None
        self.guest_transfers: Any = None
        self.physical_proxies: list[dict[str, Any]] = []
        #: links whose hot-add lock outlived the hot-remove (only while hotadd-lock-survives-remove is played)
        self.stale_hotadd_locks: set[Path] = set()
        self._disabled: dict[str, dict[str, str]] = {}
        self._optional_services()

    def _optional_services(self) -> None:
        """Services in their own modules; each registers itself on the context if present."""
        import importlib

        for module in (
            "conformance.sim.fileservice",
            "conformance.sim.objects.guest_operations",
            "conformance.sim.objects.vstorage_object_manager",
            "conformance.sim.objects.custom_fields",
        ):
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
                continue
            mod.register(self)

    # --- SOAP dispatch ---

    def invoke(self, call: SoapCall) -> tuple[Any, Any]:
        """Run one call against the registry: (declared result type, value)."""
        if call.this is None:
            raise vmodl.fault.InvalidRequest(msg="the call names no managed object (_this)")
        target = self.registry.lookup(call.this)
        if call.method == "Fetch":
            prop = call.args.get("prop", "")
            with self.registry.lock:
                value = _refs(target.get_property(prop))
            result_type = declared_type(target.vim_type, prop)
            return result_type, typed(value, result_type)
        handler = target.soap_handler(call.method)
        if handler is None:
            raise vmodl.fault.MethodNotFound(
                msg=f"{call.method} is not simulated on {target.vim_type.__name__}",
                receiver=call.this,
                method=call.method,
            )
        if getattr(handler, "__soap_unlocked__", False):
            value = handler(**call.args)
        else:
            with self.registry.lock:
                value = handler(**call.args)
        return call.info.result, _refs(value)

    # --- datastores and disk files ---

    def datastores(self) -> list[Any]:
        from conformance.sim.objects.datastore import DatastoreImpl

        return list(self.registry.all(DatastoreImpl))

    def datastore_named(self, name: str) -> Any:
        match = next((ds for ds in self.datastores() if ds.name == name), None)
        if match is None:
            raise vim.fault.NotFound(msg=f"datastore {name!r} not found")
        return match

    def datastore_of(self, path: Path) -> Any:
        resolved = path.resolve()
        for ds in self.datastores():
            root = ds.path.resolve()
            if resolved == root or root in resolved.parents:
                return ds
        raise vmodl.fault.SystemError(msg=f"{path} is not on any datastore", reason="path outside datastores")

    def resolve_datastore_path(self, ds_path: str) -> tuple[Any, Path]:
        """'[name] dir/file.vmdk' -> (datastore, host path); InvalidDatastorePath when malformed."""
        text = ds_path.strip()
        if not text.startswith("[") or "]" not in text:
            raise vim.fault.InvalidDatastorePath(msg=f"Invalid datastore path '{ds_path}'.", datastorePath=ds_path)
        name, rest = text[1:].split("]", 1)
        datastore = self.datastore_named(name)
        return datastore, datastore.local_path(rest.strip())

    def resolve_datastore(self, ref: Any, ds_path: str | None) -> Any:
        if ref is not None:
            return self.registry.lookup(ref)
        if ds_path:
            return self.resolve_datastore_path(ds_path)[0]
        raise vim.fault.InvalidDatastore(msg="no datastore given")

    def find_disk_file(self, path: Path) -> tuple[Any, tuple[Any, int] | None]:
        """The live VirtualDiskFile for a host path, and the (VM, disk key) that owns it, if any."""
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl
        from conformance.sim.storage.vmdk import VirtualDiskFile

        resolved = path.resolve()
        for vm in self.registry.all(VirtualMachineImpl):
            for disk in vm.disks:
                heads = [disk.file, *(s.frozen[disk.key] for s in vm.all_snapshots() if disk.key in s.frozen)]
                for head in heads:
                    for link in head.chain():
                        if link.path.resolve() == resolved:
                            owner = (vm, disk.key) if disk.attached_from is None else disk.attached_from
                            return link, owner
        for fcd_file in self.fcd_files():
            for link in fcd_file.chain():
                if link.path.resolve() == resolved:
                    return link, None
        if not resolved.exists():
            raise vim.fault.FileNotFound(msg=f"File {path.name} was not found", file=str(path.name))
        return VirtualDiskFile.open(resolved), None

    def fcd_files(self) -> list[Any]:
        manager = self.vstorage_object_manager
        return manager.disk_files() if manager is not None else []

    def links_used_elsewhere(self, vm: Any) -> tuple[set[Path], set[Path]]:
        """Links of `vm`'s chains used by others: (shared by another VM's own chain or an FCD, hot-added to
        another VM now)."""
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        shared: set[Path] = set()
        locked: set[Path] = set()
        for other in self.registry.all(VirtualMachineImpl):
            for disk in other.disks:
                if disk.attached_from is not None:
                    locked.update(link.path for link in disk.file.chain())
                elif other is not vm:
                    shared.update(link.path for link in disk.file.chain())
            if other is not vm:
                for snap in other.all_snapshots():
                    for frozen in snap.frozen.values():
                        shared.update(link.path for link in frozen.chain())
        for fcd_file in self.fcd_files():
            shared.update(link.path for link in fcd_file.chain())
        dataplane = getattr(self, "dataplane", None)
        if dataplane is not None:  # links open for writing over the data plane
            locked.update(dataplane.paths_open_for_writing())
        return shared, locked

    def links_in_use(self, vm: Any) -> set[Path]:
        shared, locked = self.links_used_elsewhere(vm)
        return shared | locked

    def delete_vm_files(self, vm: Any) -> None:
        """Delete a VM's own files, keeping links other VMs or FCDs still use (linked-clone parents)."""
        used = self.links_in_use(vm)
        for path in vm.files():
            if path.suffix == ".vmx":
                path.unlink(missing_ok=True)
        links = {link.path: link for d in vm.disks if d.attached_from is None for link in d.file.chain()}
        for snap in vm.all_snapshots():
            for frozen in snap.frozen.values():
                links.update({link.path: link for link in frozen.chain()})
        for path, link in links.items():
            if path not in used:
                link.delete()
        with contextlib.suppress(OSError):
            vm.home_dir.rmdir()

    # --- PrepareForAccess / EndAccess (AuthorizationManager.DisableMethods) ---

    def disabled_methods(self, entity: Any) -> dict[str, str]:
        return self._disabled.get(entity.moid, {})

    def set_disabled(self, entity: Any, methods: list[str], source: str, disabled: bool) -> None:
        current = self._disabled.setdefault(entity.moid, {})
        for method in methods:
            if disabled:
                current[method] = source
            else:
                current.pop(method, None)
        self.registry.changed()

    # --- fault hooks ---

    def apply_fault_hooks(self, changes: dict[str, Any]) -> None:
        """Hooks by name; `datastore_free_space` takes {datastore name: bytes or null}."""
        changes = dict(changes)
        free = changes.pop("datastore_free_space", None)
        if free is not None:
            if not isinstance(free, dict):
                raise ValueError("datastore_free_space must map datastore names to bytes (or null to reset)")
            for name, value in free.items():
                self.set_datastore_free_space(name, value)
        self.faults.update(**changes)

    def set_datastore_free_space(self, name: str, free_bytes: int | None) -> None:
        try:
            datastore = self.datastore_named(name)
        except vim.fault.NotFound as exc:
            raise ValueError(f"unknown datastore {name!r}") from exc
        if free_bytes is not None and (not isinstance(free_bytes, int) or free_bytes < 0):
            raise ValueError(f"free space for {name} must be a byte count >= 0 or null, got {free_bytes!r}")
        datastore.space.set_free_space(free_bytes)
        self.registry.changed()

    def fault_state(self) -> dict[str, Any]:
        state = self.faults.as_dict()
        state["datastore_free_space"] = {ds.name: ds.space.free() for ds in self.datastores()}
        return state


def _refs(value: Any) -> Any:
    """Managed-object implementations become morefs on the way out."""
    from conformance.sim.registry import ManagedObjectImpl

    if isinstance(value, ManagedObjectImpl):
        return value.ref
    if isinstance(value, list) and not isinstance(value, VmomiSupport.Array):
        return [_refs(v) for v in value]
    return value


class Simulator:
    """A running simulated vCenter on 127.0.0.1; a context manager that cleans up what it created."""

    def __init__(
        self,
        vsphere: str = "7.0U3",
        port: int = 0,
        state_dir: Path | None = None,
        inventory: InventorySpec | None = None,
        user: str = DEFAULT_USER,
        password: str | None = None,
        sim_faults: tuple[str, ...] = (),
    ) -> None:
        from conformance.knowledge.sim_faults import check_faults

        self.profile = get_profile(vsphere)
        #: integrity faults this server plays (``--sim-fault``); library-side names are the library's business
        self.sim_faults = check_faults(sim_faults)
        self.requested_port = port
        self._own_state_dir = state_dir is None
        # marked as this process's at once: `vddk-conformance sweep` removes it once this process is gone
        self.state_dir = owned_temp_dir("vsphere-sim-") if state_dir is None else Path(state_dir)
        self.inventory = inventory or default_inventory()
        self.user = user
        self.password = password or secrets.token_urlsafe(18)
        self.ctx: SimContext | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Simulator:
        from conformance.sim.dataplane.server import DataPlane
        from conformance.sim.server import SimHTTPServer, serve_in_thread

        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._own_state_dir:  # started by another process than the one that made it: that one owns it now
            write_owner(self.state_dir)
        try:
            self.ctx = SimContext(self.profile, self.state_dir, self.user, self.password)
            self.ctx.faults.play(self.sim_faults)
            build_inventory(self.ctx, self.inventory)
            self._server = SimHTTPServer(self.ctx, ("127.0.0.1", self.requested_port))
            self.ctx.server_address = self._server.server_address  # type: ignore[attr-defined]
            self.ctx.dataplane = DataPlane(self.ctx).start()  # type: ignore[attr-defined]
            self._thread = serve_in_thread(self._server)
        except BaseException:
            self.stop()
            raise
        log.info("simulated vSphere %s listening on %s", self.profile.name, self.url)
        return self

    def stop(self) -> None:
        dataplane = getattr(self.ctx, "dataplane", None)
        if dataplane is not None:
            dataplane.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        close_all_under(self.state_dir)  # the disks' extents stay open until closed, even once deleted
        if self._own_state_dir and self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/sdk"

    @property
    def thumbprint(self) -> str:
        assert self.ctx is not None
        return self.ctx.certificate.sha1_thumbprint

    @property
    def cert_file(self) -> Path:
        assert self.ctx is not None
        return self.ctx.certificate.cert_file

    def connection_info(self, include_password: bool = True) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "thumbprint": self.thumbprint,
            "state_dir": str(self.state_dir),
            "vsphere": self.profile.name,
            "pid": os.getpid(),
        }
        dataplane = getattr(self.ctx, "dataplane", None)
        info["nbd_port"] = dataplane.nbd_port if dataplane is not None else None
        info["nbdssl_port"] = dataplane.nbdssl_port if dataplane is not None else None
        if include_password:
            info["password"] = self.password
        return info

    # Fault hooks, for tests that hold the instance (others use POST /sim/faults).
    @property
    def faults(self) -> FaultHooks:
        assert self.ctx is not None
        return self.ctx.faults

    def set_datastore_free_space(self, name: str, free_bytes: int | None) -> None:
        assert self.ctx is not None
        self.ctx.set_datastore_free_space(name, free_bytes)

    def set_nfc_max_memory(self, host: str, max_bytes: int | None) -> None:
        """A host's NFC memory budget (hostd nfcsvc maxMemory) in bytes; None restores the 48 MiB default."""
        from conformance.sim.dataplane.nfc_memory import ledger
        from conformance.sim.objects.host import HostImpl

        assert self.ctx is not None
        names = sorted(h.name for h in self.ctx.registry.all(HostImpl))
        if host not in names:
            raise ValueError(f"unknown host {host!r}: use one of {', '.join(names)}")
        ledger(self.ctx).set_max_memory(host, max_bytes)
