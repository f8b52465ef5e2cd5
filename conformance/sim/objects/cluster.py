"""ClusterComputeResource and its ResourcePool: group the hosts and the VMs that run on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.registry import ObjectRegistry

if TYPE_CHECKING:
    from conformance.sim.objects.host import HostImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl


class ResourcePoolImpl(ManagedEntityImpl):
    vim_type = vim.ResourcePool
    id_prefix = "resgroup"

    def __init__(self, registry: ObjectRegistry, owner: ClusterImpl) -> None:
        self.owner = owner
        self.vms: list[VirtualMachineImpl] = []
        super().__init__(registry, "Resources", owner)

    def prop_owner(self) -> Any:
        return self.owner.ref

    def prop_vm(self) -> list[Any]:
        return [vm.ref for vm in self.vms]

    def prop_resourcePool(self) -> list[Any]:
        return []


class ClusterImpl(ManagedEntityImpl):
    vim_type = vim.ClusterComputeResource
    id_prefix = "domain-c"

    def __init__(self, registry: ObjectRegistry, name: str, parent: ManagedEntityImpl) -> None:
        self.hosts: list[HostImpl] = []
        super().__init__(registry, name, parent)
        self.resource_pool = ResourcePoolImpl(registry, self)

    def new_id_hint(self) -> str:
        return self.moid

    def add_child(self, child: ManagedEntityImpl) -> None:
        if isinstance(child.ref, vim.HostSystem) and child not in self.hosts:
            self.hosts.append(cast("HostImpl", child))

    def prop_host(self) -> list[Any]:
        return [h.ref for h in self.hosts]

    def prop_resourcePool(self) -> Any:
        return self.resource_pool.ref

    def prop_datastore(self) -> list[Any]:
        seen: dict[str, Any] = {}
        for host in self.hosts:
            for ds in host.datastores:
                seen.setdefault(ds.moid, ds.ref)
        return list(seen.values())

    def prop_network(self) -> list[Any]:
        return [n.ref for n in self.registry.all_kind("Network")]

    def prop_summary(self) -> Any:
        return vim.ClusterComputeResource.Summary(
            numHosts=len(self.hosts),
            numEffectiveHosts=sum(1 for h in self.hosts if not h.in_maintenance),
            totalCpu=sum(h.cpu_mhz * h.cpu_cores for h in self.hosts),
            totalMemory=sum(h.memory_bytes for h in self.hosts),
            effectiveCpu=0,
            effectiveMemory=0,
            numCpuCores=sum(h.cpu_cores for h in self.hosts),
            numCpuThreads=sum(h.cpu_cores for h in self.hosts),
            overallStatus="green",
        )

    def prop_configurationEx(self) -> Any:
        return vim.cluster.ConfigInfoEx(
            drsConfig=vim.cluster.DrsConfigInfo(enabled=True, defaultVmBehavior="fullyAutomated"),
            dasConfig=vim.cluster.DasConfigInfo(enabled=False),
        )
