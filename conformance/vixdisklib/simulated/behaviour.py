"""The simulated VixDiskLib plays each build from the knowledge layer's per-build facts
(``conformance.build_facts``, data in conformance/data/vddk_builds.toml); this module only re-exports them."""

from __future__ import annotations

from conformance.build_facts import BehaviourError, BuildBehaviour, all_behaviours, behaviour_of

__all__ = ["BehaviourError", "BuildBehaviour", "all_behaviours", "behaviour_of"]
