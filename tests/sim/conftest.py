"""Fixtures for the simulator's own tests: a fresh instance per test, driven through pyVmomi only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vsphere.connection import Endpoint, connect, disconnect


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as instance:
        yield instance


@pytest.fixture
def si(sim: Simulator) -> Iterator[Any]:
    service_instance = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
    yield service_instance
    disconnect(service_instance)


@pytest.fixture
def content(si: Any) -> Any:
    return si.RetrieveContent()


def find(content: Any, kind: Any, name: str) -> Any:
    """An inventory object by type and name, through a ContainerView as a client would."""
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        for obj in view.view:
            if obj.name == name:
                return obj
    finally:
        view.DestroyView()
    raise LookupError(f"no {kind.__name__} named {name}")


@pytest.fixture
def vm_named(content: Any) -> Any:
    return lambda name: find(content, vim.VirtualMachine, name)


def wait(task: Any) -> Any:
    """Wait for a task with pyVim's own helper (CreateFilter + WaitForUpdates) and return its result."""
    WaitForTask(task)
    return task.info.result
