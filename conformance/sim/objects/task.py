"""Task and TaskManager: long-running operations run on worker threads, observable through TaskInfo."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, current_session, soap_method

if TYPE_CHECKING:
    from conformance.sim.objects.entity import ManagedEntityImpl

log = logging.getLogger("conformance.sim.task")

RECENT_SECONDS = 600.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TaskImpl(ManagedObjectImpl):
    """One task. Its body runs on a thread of its own and mutates state under the registry lock."""

    vim_type = vim.Task
    id_prefix = "task"

    def __init__(self, registry: ObjectRegistry, entity: ManagedEntityImpl | None, method: Any, user: str) -> None:
        super().__init__(registry)
        self.entity = entity
        self.finished_at: float | None = None
        self.done = threading.Event()
        self.info = vim.TaskInfo(
            key=self.moid,
            task=self.ref,
            name=method,
            descriptionId=f"{method.info.type.__name__.split('.')[-1]}.{method.info.name[0].lower()}{method.info.name[1:]}",
            entity=entity.ref if entity is not None else None,
            entityName=entity.name if entity is not None else None,
            state=vim.TaskInfo.State.queued,
            cancelled=False,
            cancelable=False,
            queueTime=_now(),
            eventChainId=0,
            reason=vim.TaskReasonUser(userName=user),
        )

    def is_recent(self) -> bool:
        return self.finished_at is None or time.monotonic() - self.finished_at < RECENT_SECONDS

    def prop_info(self) -> Any:
        return self.info

    def set_progress(self, percent: int) -> None:
        with self.registry.lock:
            self.info.progress = percent
        self.registry.changed()

    def run(self, body: Callable[[TaskImpl], Any]) -> None:
        with self.registry.lock:
            self.info.state = vim.TaskInfo.State.running
            self.info.startTime = _now()
            self.info.progress = 0
        self.registry.changed()
        try:
            result = body(self)
        except vmodl.MethodFault as fault:
            self._finish(vim.TaskInfo.State.error, error=fault)
        except Exception as exc:
            log.exception("task %s failed", self.moid)
            self._finish(vim.TaskInfo.State.error, error=vmodl.fault.SystemError(msg=str(exc), reason=str(exc)))
        else:
            if isinstance(result, ManagedObjectImpl):
                result = result.ref
            self._finish(vim.TaskInfo.State.success, result=result)

    def _finish(self, state: Any, result: Any = None, error: Any = None) -> None:
        with self.registry.lock:
            self.info.state = state
            self.info.result = result
            self.info.error = error
            self.info.completeTime = _now()
            self.info.progress = 100 if state == vim.TaskInfo.State.success else self.info.progress
            self.finished_at = time.monotonic()
        self.done.set()
        self.registry.changed()


class TaskManagerImpl(ManagedObjectImpl):
    vim_type = vim.TaskManager
    id_prefix = "TaskManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "TaskManager")
        self.tasks: list[TaskImpl] = []

    def start(
        self,
        entity: ManagedEntityImpl | None,
        method: Any,
        body: Callable[[TaskImpl], Any],
        extra_entities: list[ManagedEntityImpl] | None = None,
    ) -> TaskImpl:
        """Create a task for `method` on `entity` and run `body(task)` on its own thread."""
        session = current_session.get()
        task = TaskImpl(self.registry, entity, method, session.user_name if session else "vpxd-extension")
        with self.registry.lock:
            self.tasks.append(task)
            for target in [entity, *(extra_entities or [])]:
                if target is not None:
                    target.recent_tasks.append(task)
        self.registry.changed()
        thread = threading.Thread(target=task.run, args=(body,), name=f"sim-{task.moid}", daemon=True)
        thread.start()
        return task

    def running(self, entity: ManagedEntityImpl, method_name: str) -> list[TaskImpl]:
        """Tasks of `method_name` (e.g. 'EnterMaintenanceMode') on entity still queued or running."""
        with self.registry.lock:
            return [
                t
                for t in self.tasks
                if t.entity is entity
                and t.info.name is not None
                and t.info.name.info.name == method_name
                and t.info.state in (vim.TaskInfo.State.queued, vim.TaskInfo.State.running)
            ]

    def prop_recentTask(self) -> list[Any]:
        return [t.ref for t in self.tasks if t.is_recent()]

    def prop_description(self) -> Any:
        return vim.TaskDescription(methodInfo=[], state=[], reason=[])

    def prop_maxCollector(self) -> int:
        return 32

    @soap_method("CreateCollectorForTasks")
    def create_collector(self, filter: Any) -> Any:
        raise vmodl.fault.NotSupported(msg="task history collectors are not simulated; read recentTask")
