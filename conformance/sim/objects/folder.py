"""Folder: the containers of the inventory tree (root, vm, host, datastore and network folders)."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.registry import ObjectRegistry, soap_method


class FolderImpl(ManagedEntityImpl):
    vim_type = vim.Folder
    id_prefix = "group"

    def __init__(
        self,
        registry: ObjectRegistry,
        name: str,
        child_type: list[str],
        parent: ManagedEntityImpl | None = None,
        moid: str | None = None,
    ) -> None:
        self.children: list[ManagedEntityImpl] = []
        self.child_type = child_type
        super().__init__(registry, name, parent, moid)

    def add_child(self, child: ManagedEntityImpl) -> None:
        if child not in self.children:
            self.children.append(child)
            self.registry.changed()

    def remove_child(self, child: ManagedEntityImpl) -> None:
        if child in self.children:
            self.children.remove(child)
            self.registry.changed()

    def find_child(self, name: str) -> ManagedEntityImpl | None:
        return next((c for c in self.children if c.name == name), None)

    def prop_childEntity(self) -> list[Any]:
        return [c.ref for c in self.children]

    def prop_childType(self) -> list[str]:
        return list(self.child_type)

    @soap_method("CreateVM_Task")
    def create_vm(self, config: Any, pool: Any, host: Any = None) -> Any:
        """A new VM from a ConfigSpec: home on the datastore of files.vmPathName, disks from deviceChange."""
        from conformance.sim.dataplane import faults as dataplane_faults
        from conformance.sim.objects.vm_reconfig import apply_config_spec

        if "VirtualMachine" not in self.child_type:
            raise vmodl.fault.InvalidArgument(msg=f"folder {self.name} does not hold virtual machines")
        if not config.name:
            raise vmodl.fault.InvalidArgument(msg="config.name is required", invalidProperty="name")
        if self.find_child(config.name) is not None:
            raise vim.fault.DuplicateName(
                msg=f"The name '{config.name}' already exists.", name=config.name, object=self.ref
            )
        if config.files is None or not config.files.vmPathName:
            raise vmodl.fault.InvalidArgument(
                msg="config.files.vmPathName names the datastore, e.g. '[vmfs-01]'", invalidProperty="files"
            )
        resource_pool = self.registry.get_kind(pool, "ResourcePool")
        target_host = self.registry.get_kind(host, "HostSystem") if host is not None else resource_pool.owner.hosts[0]
        datastore, _ = self.ctx.resolve_datastore_path(config.files.vmPathName.split("]")[0] + "] x")

        def body(task: Any) -> Any:
            with self.registry.lock:
                vm = self.registry.kind("VirtualMachine")(
                    self.registry,
                    config.name,
                    self,
                    resource_pool,
                    target_host,
                    datastore,
                    config.guestId or "otherGuest64",
                    config.guestId or "Other (64-bit)",
                    config.numCPUs or 1,
                    int(config.memoryMB or 1024),
                )
                try:
                    apply_config_spec(
                        vm,
                        vim.vm.ConfigSpec(
                            deviceChange=dataplane_faults.shrink_created_disks(self.ctx, config.deviceChange),
                            extraConfig=config.extraConfig,
                            changeTrackingEnabled=config.changeTrackingEnabled,
                            annotation=config.annotation,
                        ),
                    )
                except BaseException:
                    self.ctx.delete_vm_files(vm)
                    resource_pool.vms.remove(vm)
                    vm.destroy_entity()
                    raise
                dataplane_faults.record_created_disks(self.ctx, vm)
            self.ctx.event_manager.post(vim.event.VmCreatedEvent, f"Created virtual machine {vm.name}", vm)
            return vm

        return self.ctx.task_manager.start(self, vim.Folder.CreateVm, body).ref
