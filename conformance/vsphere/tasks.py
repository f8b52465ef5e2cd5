"""Bounded waits on vSphere tasks and states, with tenacity, each saying what it waited for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pyVmomi import vim
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

T = TypeVar("T")
DEFAULT_TIMEOUT = 600.0


class WaitTimeoutError(TimeoutError):
    """A bounded wait ran out; the message says what was awaited and for how long."""


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float = DEFAULT_TIMEOUT, max_interval: float = 2.0
) -> T:
    """Poll `probe` until it returns something other than None (exponential back-off from 2 ms up to
    max_interval: most tasks end within milliseconds, a long one costs a handful of extra polls)."""
    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.002, max=max_interval),
        retry=retry_if_result(lambda value: value is None),
        reraise=False,
    )
    try:
        result = retrying(probe)
    except RetryError as exc:
        raise WaitTimeoutError(f"waited {timeout:.0f} s for {what}") from exc
    assert result is not None
    return result


def wait_for_task(task: Any, what: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """The task's result once it succeeds; its fault (typed, as pyVmomi raises it) when it fails."""

    def probe() -> Any:
        info = task.info
        if info.state == vim.TaskInfo.State.success:
            return ("done", info.result)
        if info.state == vim.TaskInfo.State.error:
            return ("failed", info.error)
        return None

    state, value = wait_until(f"task {what}", probe, timeout)
    if state == "failed":
        raise value
    return value
