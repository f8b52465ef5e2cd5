"""Network: the port group every simulated VM's NIC would sit on."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl


class NetworkImpl(ManagedEntityImpl):
    vim_type = vim.Network
    id_prefix = "network"

    def prop_summary(self) -> Any:
        return vim.Network.Summary(network=self.ref, name=self.name, accessible=True)

    def prop_host(self) -> list[Any]:
        return [h.ref for h in self.registry.all_kind("HostSystem")]

    def prop_vm(self) -> list[Any]:
        return []
