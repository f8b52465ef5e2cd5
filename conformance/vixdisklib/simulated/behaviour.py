"""The simulated VixDiskLib plays each build from the knowledge layer's per-build facts
(``conformance.knowledge.build_facts``, data in conformance/data/vddk_builds.toml), optionally with some known
issues fixed (``--sim-fixed``): that changes only how the simulator plays, never the facts the preflight and
expectations read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from conformance.knowledge.build_facts import (
    BehaviourError,
    BuildBehaviour,
    all_behaviours,
    behaviour_of,
    known_issue_fixes,
)

__all__ = ["BehaviourError", "BuildBehaviour", "all_behaviours", "behaviour_of", "played_behaviour"]


def played_behaviour(build: str, fixed: tuple[str, ...] = ()) -> BuildBehaviour:
    """The switches of `build` with the known issues `fixed` (item ids of the [fixed] table) played fixed."""
    fixes = known_issue_fixes()
    changes: dict[str, Any] = {}
    for item in fixed:
        if item not in fixes:
            raise BehaviourError(f"{item} has no switch the simulator can play fixed (fixable: {', '.join(fixes)})")
        changes.update(fixes[item])
    return replace(behaviour_of(build), **changes)
