"""HostSystem: runtime state and maintenance mode with a real entering phase.

While a host is entering or in maintenance mode, snapshot operations on its VMs are refused (the real
rule); powered-on VMs that can move are migrated to another host of the cluster during the entering
phase, and a VM that cannot move (a proxy with another VM's disk hot-added) keeps the host entering.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.objects.task import TaskImpl
from conformance.sim.registry import ObjectRegistry, soap_method

if TYPE_CHECKING:
    from conformance.sim.objects.cluster import ClusterImpl
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

NORMAL, ENTERING, IN_MAINTENANCE = "normal", "entering", "inMaintenance"
ESXI_BUILDS = {"6.5": "4564106", "6.7": "8169922", "7.0": "18644231", "8.0": "20513097"}


class HostImpl(ManagedEntityImpl):
    vim_type = vim.HostSystem
    id_prefix = "host"

    def __init__(self, registry: ObjectRegistry, name: str, cluster: ClusterImpl) -> None:
        super().__init__(registry, name, cluster)
        self.cluster = cluster
        self.uuid = str(uuid.uuid4())
        self.datastores: list[DatastoreImpl] = []
        self.maintenance = NORMAL
        self.cpu_cores = 16
        self.cpu_mhz = 2400
        self.memory_bytes = 256 * 2**30

    @property
    def in_maintenance(self) -> bool:
        return self.maintenance == IN_MAINTENANCE

    def vms(self) -> list[VirtualMachineImpl]:
        return [vm for vm in self.registry.all_kind("VirtualMachine") if vm.host is self]

    def refuse_if_in_maintenance(self, operation: str) -> None:
        """Snapshot operations fail while the host is entering or in maintenance mode."""
        if self.maintenance != NORMAL:
            state = "entering maintenance mode" if self.maintenance == ENTERING else "in maintenance mode"
            raise vim.fault.InvalidHostState(
                msg=f"The operation is not allowed in the current state of the host ({operation}: host "
                f"{self.name} is {state}).",
                host=self.ref,
            )

    # --- properties ---

    def product(self) -> Any:
        major = self.ctx.profile.major
        return vim.AboutInfo(
            name="VMware ESXi",
            fullName=f"VMware ESXi {self.ctx.profile.version} build-{ESXI_BUILDS.get(major, '0')}",
            vendor="VMware, Inc.",
            version=self.ctx.profile.version,
            build=ESXI_BUILDS.get(major, "0"),
            osType="vmnix-x86",
            productLineId="embeddedEsx",
            apiType="HostAgent",
            apiVersion=self.ctx.profile.api_version,
            localeVersion="INTL",
            localeBuild="000",
        )

    def runtime(self) -> Any:
        return vim.host.RuntimeInfo(
            connectionState="connected",
            powerState="poweredOn",
            inMaintenanceMode=self.in_maintenance,
            inQuarantineMode=False,
            standbyMode="none",
            bootTime=None,
        )

    def prop_runtime(self) -> Any:
        return self.runtime()

    def prop_summary(self) -> Any:
        return vim.host.Summary(
            host=self.ref,
            hardware=vim.host.Summary.HardwareSummary(
                vendor="VMware, Inc.",
                model="Simulated host",
                uuid=self.uuid,
                memorySize=self.memory_bytes,
                cpuModel="Simulated CPU",
                cpuMhz=self.cpu_mhz,
                numCpuPkgs=2,
                numCpuCores=self.cpu_cores,
                numCpuThreads=self.cpu_cores * 2,
                numNics=2,
                numHBAs=2,
            ),
            runtime=self.runtime(),
            config=vim.host.Summary.ConfigSummary(
                name=self.name, port=443, product=self.product(), vmotionEnabled=True, faultToleranceEnabled=False
            ),
            overallStatus="green",
            rebootRequired=False,
            managementServerIp="127.0.0.1",
        )

    def prop_config(self) -> Any:
        return vim.host.ConfigInfo(host=self.ref, product=self.product())

    def prop_hardware(self) -> Any:
        return vim.host.HardwareInfo(
            systemInfo=vim.host.SystemInfo(vendor="VMware, Inc.", model="Simulated host", uuid=self.uuid),
            memorySize=self.memory_bytes,
            cpuInfo=vim.host.CpuInfo(
                numCpuPackages=2,
                numCpuCores=self.cpu_cores,
                numCpuThreads=self.cpu_cores * 2,
                hz=self.cpu_mhz * 1_000_000,
            ),
        )

    def prop_vm(self) -> list[Any]:
        return [vm.ref for vm in self.vms()]

    def prop_datastore(self) -> list[Any]:
        return [ds.ref for ds in self.datastores]

    def prop_network(self) -> list[Any]:
        return [n.ref for n in self.registry.all_kind("Network")]

    # --- maintenance mode ---

    @soap_method("EnterMaintenanceMode_Task")
    def enter_maintenance_mode(
        self, timeout: int = 0, evacuatePoweredOffVms: bool | None = None, maintenanceSpec: Any = None
    ) -> Any:
        if self.maintenance == ENTERING or self.ctx.task_manager.running(self, "EnterMaintenanceMode"):
            raise vim.fault.InvalidState(msg=f"host {self.name} is already entering maintenance mode")
        if self.in_maintenance:
            raise vim.fault.InvalidState(msg=f"host {self.name} is already in maintenance mode")
        return self.ctx.task_manager.start(
            self, vim.HostSystem.EnterMaintenanceMode, lambda task: self._enter(task, timeout)
        ).ref

    def _enter(self, task: TaskImpl, timeout: int) -> None:
        events = self.ctx.event_manager
        with self.registry.lock:
            self.maintenance = ENTERING
        events.post(vim.event.EnteringMaintenanceModeEvent, f"Host {self.name} is entering maintenance mode", self)
        self.registry.changed()
        started = time.monotonic()
        entering = self.ctx.faults.maintenance_entering_seconds
        while True:
            elapsed = time.monotonic() - started
            with self.registry.lock:
                blockers = self._evacuate(elapsed >= entering / 2)
            if elapsed >= entering and not blockers:
                break
            if timeout > 0 and elapsed >= timeout:
                with self.registry.lock:
                    self.maintenance = NORMAL
                self.registry.changed()
                raise vim.fault.Timedout(
                    msg=f"host {self.name} could not enter maintenance mode: {'; '.join(blockers)}"
                )
            task.set_progress(min(99, int(100 * elapsed / max(entering, 0.001))))
            time.sleep(min(0.05, max(entering / 20, 0.005)))
        with self.registry.lock:
            self.maintenance = IN_MAINTENANCE
        events.post(
            vim.event.EnteredMaintenanceModeEvent,
            f"Host {self.name} in {self.parent.name if self.parent else ''} has entered maintenance mode",
            self,
        )
        self.registry.changed()

    def _evacuate(self, migrate_now: bool) -> list[str]:
        """Move powered-on VMs that can move to another host; return why the others cannot."""
        blockers = []
        for vm in self.vms():
            if vm.power_state != "poweredOn":
                continue
            reason = vm.migration_blocker()
            if reason:
                blockers.append(f"{vm.name}: {reason}")
                continue
            if not migrate_now:
                blockers.append(f"{vm.name}: waiting for migration")
                continue
            target = next((h for h in self.cluster.hosts if h is not self and h.maintenance == NORMAL), None)
            if target is None:
                blockers.append(f"{vm.name}: no other host to migrate to")
                continue
            vm.host = target
            self.ctx.event_manager.post(
                vim.event.VmMigratedEvent,
                f"Migration of {vm.name} from {self.name} to {target.name} completed",
                vm,
                sourceHost=vim.event.HostEventArgument(host=self.ref, name=self.name),
            )
        return blockers

    @soap_method("ExitMaintenanceMode_Task")
    def exit_maintenance_mode(self, timeout: int = 0) -> Any:
        if self.maintenance == NORMAL:
            raise vim.fault.InvalidState(msg=f"host {self.name} is not in maintenance mode")

        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                self.maintenance = NORMAL
            self.ctx.event_manager.post(
                vim.event.ExitMaintenanceModeEvent, f"Host {self.name} has exited maintenance mode", self
            )

        return self.ctx.task_manager.start(self, vim.HostSystem.ExitMaintenanceMode, body).ref
