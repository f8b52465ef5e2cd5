"""What VDDK and vSphere are known to do, as data and pure functions: the release-note catalog, the
VDDK build and vSphere version model, per-build facts, the HotAdd proxy support matrix, transport rules,
known-issue symptoms, the simulator's integrity faults and the detection plan. The bottom layer: it imports
nothing of the simulator, the lab, the plugin or the runs (import-linter contract in pyproject.toml).
"""
