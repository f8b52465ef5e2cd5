"""VirtualMachine: configuration, disks, power, CBT queries; snapshots, reconfiguration and clones live in
their own modules (snapshot.py, vm_reconfig.py, vm_clone.py) and act on this state."""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects import cbt_faults
from conformance.sim.objects.disks import SCSI_CONTROLLER_KEY, DiskState, disk_device
from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.objects.snapshot import SnapshotOperations
from conformance.sim.objects.task import TaskImpl
from conformance.sim.objects.vm_clone import CloneOperations
from conformance.sim.objects.vm_fcd import FcdOperations
from conformance.sim.objects.vm_reconfig import ReconfigOperations
from conformance.sim.objects.vm_validity import ValidityOperations
from conformance.sim.registry import ObjectRegistry, soap_method
from conformance.sim.storage.cbt import InvalidChangeId

if TYPE_CHECKING:
    from conformance.sim.objects.cluster import ResourcePoolImpl
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.folder import FolderImpl
    from conformance.sim.objects.host import HostImpl
    from conformance.sim.objects.snapshot import SnapshotImpl

#: most extents one QueryChangedDiskAreas reply carries (what partners report for ESXi); callers page with
#: startOffset
MAX_CHANGED_AREAS = 2000
WINDOWS_GUESTS = ("windows",)


class VirtualMachineImpl(
    SnapshotOperations, ReconfigOperations, CloneOperations, FcdOperations, ValidityOperations, ManagedEntityImpl
):
    vim_type = vim.VirtualMachine
    id_prefix = "vm"

    def __init__(
        self,
        registry: ObjectRegistry,
        name: str,
        folder: FolderImpl,
        pool: ResourcePoolImpl,
        host: HostImpl,
        home: DatastoreImpl,
        guest_id: str,
        guest_full_name: str,
        num_cpu: int = 2,
        memory_mb: int = 4096,
    ) -> None:
        super().__init__(registry, name, folder)
        self.pool = pool
        pool.vms.append(self)
        self.host = host
        self.home = home
        self.home_dir = home.local_path(name)
        self.home_dir.mkdir(parents=True, exist_ok=True)
        self.guest_id = guest_id
        self.guest_full_name = guest_full_name
        self.num_cpu = num_cpu
        self.memory_mb = memory_mb
        self.bios_uuid = str(uuid.uuid4())
        self.instance_uuid = str(uuid.uuid4())
        self.disks: list[DiskState] = []
        self.power_state = "poweredOff"
        self.cbt_enabled = False
        self.extra_config: dict[str, str] = {}
        self.annotation = ""
        self.root_snapshots: list[SnapshotImpl] = []
        self.current_snapshot: SnapshotImpl | None = None
        self.change_version = 0
        self.create_date = datetime.datetime.now(datetime.UTC)
        self.boot_time: datetime.datetime | None = None
        self.controller_type = "pvscsi" if guest_id.startswith(("rhel", "centos", "sles")) else "lsilogic"
        self.guest_detail = guest_full_name
        self.role = "target"
        self.vmx_file = self.home_dir / f"{name}.vmx"
        self.vmx_file.write_text(f'displayName = "{name}"\nguestOS = "{guest_id}"\n')

    # --- state helpers shared by the other VM modules ---

    @property
    def vmx_path(self) -> str:
        return self.home.datastore_path(self.vmx_file)

    def touch(self) -> None:
        """Configuration changed: bump changeVersion and wake property waiters."""
        self.change_version += 1
        self.registry.changed()

    def disk(self, key: int) -> DiskState:
        for disk in self.disks:
            if disk.key == key:
                return disk
        raise vmodl.fault.InvalidArgument(
            msg=f"no virtual disk with device key {key} on {self.name}", invalidProperty="deviceKey"
        )

    def datastores(self) -> list[DatastoreImpl]:
        seen: dict[str, DatastoreImpl] = {self.home.moid: self.home}
        for disk in self.disks:
            for link in disk.file.chain():
                ds = self.ctx.datastore_of(link.path)
                seen.setdefault(ds.moid, ds)
        return list(seen.values())

    def all_snapshots(self) -> list[SnapshotImpl]:
        out: list[SnapshotImpl] = []
        stack = list(self.root_snapshots)
        while stack:
            snap = stack.pop()
            out.append(snap)
            stack.extend(snap.children)
        return out

    def migration_blocker(self) -> str | None:
        """Why this VM cannot be vMotioned now (hot-added disks of another VM), or None."""
        foreign = [d for d in self.disks if d.attached_from is not None]
        if foreign:
            return f"{len(foreign)} hot-added disk(s) of another VM are attached"
        return None

    def refuse_snapshot_operation(self, operation: str) -> None:
        self.host.refuse_if_in_maintenance(operation)

    def is_windows(self) -> bool:
        return self.guest_id.startswith(WINDOWS_GUESTS)

    # --- properties ---

    def devices(self) -> list[Any]:
        datastore_of = self.ctx.datastore_of
        disks = [disk_device(d, datastore_of, i + 1, self.moid) for i, d in enumerate(self.disks)]
        controller_cls = (
            vim.vm.device.ParaVirtualSCSIController
            if self.controller_type == "pvscsi"
            else vim.vm.device.VirtualLsiLogicController
        )
        controller = controller_cls(
            key=SCSI_CONTROLLER_KEY,
            busNumber=0,
            sharedBus="noSharing",
            scsiCtlrUnitNumber=7,
            hotAddRemove=True,
            device=[d.key for d in self.disks if d.controller_key == SCSI_CONTROLLER_KEY],
            deviceInfo=vim.Description(label="SCSI controller 0", summary=controller_cls.__name__.split(".")[-1]),
        )
        return [controller, *disks]

    def extra_config_options(self) -> list[Any]:
        values = dict(self.extra_config)
        values["ctkEnabled"] = "TRUE" if self.cbt_enabled else "FALSE"
        for disk in self.disks:
            values[f"scsi0:{disk.unit_number}.ctkEnabled"] = "TRUE" if disk.cbt_enabled else "FALSE"
        return [vim.option.OptionValue(key=k, value=v) for k, v in sorted(values.items())]

    def config_info(self) -> Any:
        return vim.vm.ConfigInfo(
            name=self.name,
            guestId=self.guest_id,
            guestFullName=self.guest_full_name,
            uuid=self.bios_uuid,
            instanceUuid=self.instance_uuid,
            version="vmx-13",
            template=False,
            changeVersion=str(self.change_version),
            modified=datetime.datetime.now(datetime.UTC),
            createDate=self.create_date,
            changeTrackingEnabled=self.cbt_enabled,
            annotation=self.annotation,
            firmware="bios",
            hardware=vim.vm.VirtualHardware(
                numCPU=self.num_cpu, numCoresPerSocket=1, memoryMB=self.memory_mb, device=self.devices()
            ),
            extraConfig=self.extra_config_options(),
            files=vim.vm.FileInfo(
                vmPathName=self.vmx_path,
                snapshotDirectory=self.home.datastore_path(self.home_dir),
                suspendDirectory=self.home.datastore_path(self.home_dir),
                logDirectory=self.home.datastore_path(self.home_dir),
            ),
            cpuHotAddEnabled=False,
            memoryHotAddEnabled=False,
            npivTemporaryDisabled=True,
        )

    def prop_config(self) -> Any:
        return self.config_info()

    def consolidation_needed(self) -> bool:
        from conformance.sim.objects.disks import redundant_links
        from conformance.sim.objects.snapshot import disk_graph, skips_consolidation

        if skips_consolidation(self):  # the server hides the deltas it left
            return False
        return any(redundant_links(d.file, disk_graph(self, d)) for d in self.disks if d.attached_from is None)

    def runtime(self) -> Any:
        return vim.vm.RuntimeInfo(
            host=self.host.ref,
            connectionState=self.connection_state,
            powerState=self.power_state,
            consolidationNeeded=self.consolidation_needed(),
            bootTime=self.boot_time,
            faultToleranceState="notConfigured",
            toolsInstallerMounted=False,
            onlineStandby=False,
            paused=False,
            snapshotInBackground=False,
            instantCloneFrozen=False,
            maxCpuUsage=self.num_cpu * 2400,
            maxMemoryUsage=self.memory_mb,
            numMksConnections=0,
            recordReplayState="inactive",
            cleanPowerOff=True,
            needSecondaryReason=None,
        )

    def prop_runtime(self) -> Any:
        return self.runtime()

    def guest_info(self) -> Any:
        running = self.power_state == "poweredOn"
        return vim.vm.GuestInfo(
            toolsStatus="toolsOk" if running else "toolsNotRunning",
            toolsRunningStatus="guestToolsRunning" if running else "guestToolsNotRunning",
            toolsVersionStatus2="guestToolsCurrent",
            toolsVersion="12320",
            guestId=self.guest_id,
            guestFullName=self.guest_detail if running else self.guest_full_name,
            guestFamily="windowsGuest" if self.is_windows() else "linuxGuest",
            guestState="running" if running else "notRunning",
            hostName=self.name if running else None,
            ipAddress=None,
            guestOperationsReady=running,
            interactiveGuestOperationsReady=False,
            guestStateChangeSupported=True,
        )

    def prop_guest(self) -> Any:
        return self.guest_info()

    def prop_guestHeartbeatStatus(self) -> str:
        return "green" if self.power_state == "poweredOn" else "gray"

    def prop_summary(self) -> Any:
        return vim.vm.Summary(
            vm=self.ref,
            runtime=self.runtime(),
            guest=vim.vm.Summary.GuestSummary(
                guestId=self.guest_id,
                guestFullName=self.guest_full_name,
                toolsStatus=self.guest_info().toolsStatus,
                toolsRunningStatus=self.guest_info().toolsRunningStatus,
            ),
            config=vim.vm.Summary.ConfigSummary(
                name=self.name,
                template=False,
                vmPathName=self.vmx_path,
                memorySizeMB=self.memory_mb,
                numCpu=self.num_cpu,
                numEthernetCards=0,
                numVirtualDisks=len(self.disks),
                uuid=self.bios_uuid,
                instanceUuid=self.instance_uuid,
                guestId=self.guest_id,
                guestFullName=self.guest_full_name,
                annotation=self.annotation,
            ),
            storage=vim.vm.Summary.StorageSummary(
                committed=sum(f.stat().st_blocks * 512 for f in self.files()),
                uncommitted=0,
                unshared=0,
                timestamp=datetime.datetime.now(datetime.UTC),
            ),
            quickStats=vim.vm.Summary.QuickStats(),
            overallStatus="green",
        )

    def prop_capability(self) -> Any:
        return vim.vm.Capability(
            snapshotOperationsSupported=True,
            multipleSnapshotsSupported=True,
            snapshotConfigSupported=True,
            poweredOffSnapshotsSupported=True,
            memorySnapshotsSupported=True,
            revertToSnapshotSupported=True,
            quiescedSnapshotsSupported=True,
            disableSnapshotsSupported=False,
            lockSnapshotsSupported=True,
            consolePreferencesSupported=False,
            cpuFeatureMaskSupported=True,
            s1AcpiManagementSupported=True,
            settingScreenResolutionSupported=False,
            toolsAutoUpdateSupported=False,
            vmNpivWwnSupported=True,
            npivWwnOnNonRdmVmSupported=True,
            swapPlacementSupported=True,
            toolsSyncTimeSupported=True,
            virtualMmuUsageSupported=True,
            diskSharesSupported=True,
            bootOptionsSupported=True,
            settingVideoRamSizeSupported=True,
            changeTrackingSupported=True,
        )

    def prop_snapshot(self) -> Any:
        if not self.root_snapshots:
            return None
        return vim.vm.SnapshotInfo(
            currentSnapshot=self.current_snapshot.ref if self.current_snapshot else None,
            rootSnapshotList=[s.tree() for s in self.root_snapshots],
        )

    def prop_rootSnapshot(self) -> list[Any]:
        return [s.ref for s in self.all_snapshots()]

    def prop_datastore(self) -> list[Any]:
        return [ds.ref for ds in self.datastores()]

    def prop_network(self) -> list[Any]:
        return []

    def prop_resourcePool(self) -> Any:
        return self.pool.ref

    def prop_layoutEx(self) -> Any:
        files = []
        for key, path in enumerate(self.files()):
            ds = self.ctx.datastore_of(path)
            kind = (
                "config"
                if path.suffix == ".vmx"
                else "diskExtent"
                if path.name.endswith(("-flat.vmdk", "-delta.vmdk"))
                else "diskDescriptor"
                if path.suffix == ".vmdk"
                else "extendedConfig"
            )
            size = path.stat().st_size if path.exists() else 0
            files.append(
                vim.vm.FileLayoutEx.FileInfo(
                    key=key,
                    name=ds.datastore_path(path),
                    type=kind,
                    size=size,
                    uniqueSize=size,
                    accessible=path.exists(),
                )
            )
        return vim.vm.FileLayoutEx(file=files, timestamp=datetime.datetime.now(datetime.UTC))

    def files(self) -> list[Any]:
        """Every host file of this VM: the .vmx and each link of each own disk chain and snapshot."""
        paths: dict[Any, None] = {self.vmx_file: None}
        links = [link for d in self.disks if d.attached_from is None for link in d.file.chain()]
        for snap in self.all_snapshots():
            for frozen in snap.frozen.values():
                links.extend(frozen.chain())
        for link in links:
            for f in link.files():
                paths.setdefault(f, None)
        return list(paths)

    # --- power and lifecycle ---

    @soap_method("PowerOnVM_Task")
    def power_on(self, host: Any = None) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                if self.power_state == "poweredOn":
                    raise vim.fault.InvalidPowerState(
                        msg="The attempted operation cannot be performed in the current state (Powered on).",
                        requestedState="poweredOn",
                        existingState="poweredOn",
                    )
                self.power_state = "poweredOn"
                self.boot_time = datetime.datetime.now(datetime.UTC)
            self.ctx.event_manager.post(
                vim.event.VmPoweredOnEvent, f"{self.name} on {self.host.name} is powered on", self
            )

        return self.ctx.task_manager.start(self, vim.VirtualMachine.PowerOn, body).ref

    @soap_method("PowerOffVM_Task")
    def power_off(self) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                if self.power_state == "poweredOff":
                    raise vim.fault.InvalidPowerState(
                        msg="The attempted operation cannot be performed in the current state (Powered off).",
                        requestedState="poweredOff",
                        existingState="poweredOff",
                    )
                self.power_state = "poweredOff"
                self.boot_time = None
            self.ctx.event_manager.post(
                vim.event.VmPoweredOffEvent, f"{self.name} on {self.host.name} is powered off", self
            )

        return self.ctx.task_manager.start(self, vim.VirtualMachine.PowerOff, body).ref

    @soap_method("Destroy_Task")
    def destroy(self) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                if self.power_state == "poweredOn":
                    raise vim.fault.InvalidPowerState(
                        msg="The attempted operation cannot be performed in the current state (Powered on).",
                        requestedState="poweredOff",
                        existingState="poweredOn",
                    )
                self.ctx.delete_vm_files(self)
                self.pool.vms.remove(self)
                self.destroy_entity()
            self.ctx.event_manager.post(vim.event.VmRemovedEvent, f"Removed {self.name} on {self.host.name}", None)

        return self.ctx.task_manager.start(self, vim.VirtualMachine.Destroy, body).ref

    @soap_method("UnregisterVM")
    def unregister(self) -> None:
        self.pool.vms.remove(self)
        self.destroy_entity()

    @soap_method("Rename_Task")
    def rename(self, newName: str) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                self.name = newName
                self.touch()

        return self.ctx.task_manager.start(self, vim.VirtualMachine.Rename, body).ref

    # --- changed block tracking ---

    @soap_method("QueryChangedDiskAreas")
    def query_changed_disk_areas(
        self, snapshot: Any = None, deviceKey: int = 0, startOffset: int = 0, changeId: str = ""
    ) -> Any:
        from conformance.sim.objects.snapshot import SnapshotImpl

        if snapshot is not None:
            snap = self.registry.get(snapshot, SnapshotImpl)
            if snap.vm is not self:
                raise vmodl.fault.InvalidArgument(msg="the snapshot belongs to another VM", invalidProperty="snapshot")
            file, until, tracked = snap.frozen_disk(deviceKey)
            disk = self.disk(deviceKey)
        else:
            if self.power_state != "poweredOff":
                raise vim.fault.InvalidState(msg="QueryChangedDiskAreas without a snapshot needs a powered-off VM")
            disk = self.disk(deviceKey)
            file, until, tracked = disk.file, disk.change_id(), disk.cbt_enabled
        capacity = file.capacity
        if startOffset < 0 or startOffset >= capacity:
            raise vmodl.fault.InvalidArgument(
                msg="A specified parameter was not correct: startOffset", invalidProperty="startOffset"
            )
        if changeId == "*":
            extents = cbt_faults.allocated(self.ctx, file.allocated_extents())
        else:
            if not tracked or disk.tracker is None:
                raise vim.fault.FileFault(
                    msg=f"Change tracking is not active on disk {deviceKey} of {self.name}",
                    file=disk.datastore.datastore_path(file.path),
                )
            try:
                extents = disk.tracker.changed_since(changeId, until)
                extents = cbt_faults.changed(self.ctx, extents, disk.tracker, capacity)
            except InvalidChangeId as exc:
                raise vmodl.fault.InvalidArgument(
                    msg=f"A specified parameter was not correct: changeId ({exc})", invalidProperty="changeId"
                ) from exc
        return cbt_faults.first_page(self.ctx, changed_areas_page(extents, startOffset, capacity), capacity)


def changed_areas_page(extents: list[tuple[int, int]], start: int, capacity: int) -> Any:
    """One DiskChangeInfo page from `start`: at most MAX_CHANGED_AREAS extents; `length` is the span covered."""
    areas: list[Any] = []
    end = capacity
    for offset, length in extents:
        stop = offset + length
        if stop <= start:
            continue
        offset = max(offset, start)
        if len(areas) == MAX_CHANGED_AREAS:
            end = offset
            break
        areas.append(vim.VirtualMachine.DiskChangeInfo.DiskChangeExtent(start=offset, length=stop - offset))
    return vim.VirtualMachine.DiskChangeInfo(startOffset=start, length=end - start, changedArea=areas)
