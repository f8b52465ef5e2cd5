"""ServiceInstance: the entry point, whose content and `about` follow the selected vSphere profile."""

from __future__ import annotations

import datetime
from typing import Any

from pyVmomi import vim

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method


class ServiceInstanceImpl(ManagedObjectImpl):
    vim_type = vim.ServiceInstance
    id_prefix = "ServiceInstance"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "ServiceInstance")

    def about(self) -> Any:
        profile = self.ctx.profile
        return vim.AboutInfo(
            name="VMware vCenter Server",
            fullName=profile.full_name,
            vendor="VMware, Inc.",
            version=profile.version,
            build=profile.build,
            localeVersion="INTL",
            localeBuild="000",
            osType="linux-x64",
            productLineId="vpx",
            apiType="VirtualCenter",
            apiVersion=profile.api_version,
            instanceUuid=self.ctx.instance_uuid,
            licenseProductName="VMware VirtualCenter Server",
            licenseProductVersion=profile.major,
        )

    def content(self) -> Any:
        ctx = self.ctx
        return vim.ServiceInstanceContent(
            rootFolder=ctx.root_folder.ref,
            propertyCollector=ctx.property_collector.ref,
            viewManager=ctx.view_manager.ref,
            about=self.about(),
            sessionManager=ctx.session_manager.ref,
            taskManager=ctx.task_manager.ref,
            eventManager=ctx.event_manager.ref,
            searchIndex=ctx.search_index.ref,
            fileManager=ctx.file_manager.ref if ctx.file_manager else None,
            virtualDiskManager=ctx.virtual_disk_manager.ref if ctx.virtual_disk_manager else None,
            guestOperationsManager=ctx.guest_operations_manager.ref if ctx.guest_operations_manager else None,
            vStorageObjectManager=ctx.vstorage_object_manager.ref if ctx.vstorage_object_manager else None,
            customFieldsManager=ctx.custom_fields_manager.ref if ctx.custom_fields_manager else None,
        )

    def prop_content(self) -> Any:
        return self.content()

    def prop_serverClock(self) -> Any:
        return datetime.datetime.now(datetime.UTC)

    def prop_capability(self) -> Any:
        return vim.Capability(
            provisioningSupported=True,
            multiHostSupported=True,
            userShellAccessSupported=False,
            supportedEVCMode=[],
            nfsSupported=True,
        )

    @soap_method("RetrieveServiceContent")
    def retrieve_service_content(self) -> Any:
        return self.content()

    @soap_method("CurrentTime")
    def current_time(self) -> Any:
        return datetime.datetime.now(datetime.UTC)
