"""Whether vCenter can use a VM's configuration: runtime.connectionState "connected" or "invalid", and Reload.

K1: a HotAdd that declares a vVol disk's parent chain wrongly leaves the proxy VM invalid (see
``vm_reconfig.check_declared_chain``). An invalid VM refuses reconfiguration and snapshots until
``Reload`` re-reads its configuration, which is how an administrator (and the harness's teardown) repairs it.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.sim.registry import soap_method


class ValidityOperations:
    """connectionState and Reload of VirtualMachine (mixed into VirtualMachineImpl)."""

    connection_state: str = "connected"
    config_issues: tuple[Any, ...] = ()  # replaced, never mutated: the class default stays empty

    def require_valid(self: Any, operation: str) -> None:
        """InvalidState for operations vCenter refuses on a VM whose configuration it cannot use."""
        if self.connection_state == "invalid":
            raise vim.fault.InvalidState(msg=f"{operation}: the virtual machine {self.name} is invalid")

    def invalidate(self: Any, reason: str) -> None:
        self.connection_state = "invalid"
        self.ctx.event_manager.post(vim.event.GeneralVmErrorEvent, f"{self.name} is invalid: {reason}", self)
        self.touch()

    def flag_reboot(self: Any, message: str) -> None:
        """K3: a configuration issue saying the VM must be restarted (shown in vm.configIssue)."""
        event = self.ctx.event_manager.post(vim.event.VmMessageWarningEvent, message, self, message=message)
        self.config_issues = (*self.config_issues, event)
        self.touch()

    def prop_configIssue(self: Any) -> list[Any]:
        return list(self.config_issues)

    @soap_method("Reload")
    def reload(self: Any) -> None:
        """Re-read the configuration: a VM whose files are intact is connected again."""
        with self.registry.lock:
            if self.connection_state == "invalid":
                self.connection_state = "connected"
                self.touch()
