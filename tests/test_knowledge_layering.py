"""Knowledge first, the simulator built on it: the modules a lab run judges with (catalog, version model, proxy
matrix, build facts, preflight, detection plan, certification profiles, run settings, target files) load and
answer without importing the simulator or the simulated library.

Checked in a fresh interpreter (an import made by any earlier test would hide one), after calling the functions
that import lazily, by looking at `sys.modules`. The hostile case: the same probe over a module that does import
the simulator must report it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("conformance.sim", "conformance.vixdisklib.simulated")
#: each knowledge module, and calls that exercise its function-level imports
KNOWLEDGE = {
    "conformance.knowledge.versions": "m.supported_pairs(); m.VsphereVersion.parse('M16').facts",
    "conformance.knowledge.build_facts": "m.all_behaviours()",
    "conformance.knowledge.catalog": "[m.expectation(i.id, '7.0.3', '6.7U3') for i in m.load_catalog()]",
    "conformance.knowledge.proxy_support": "m.check_proxy('Windows Server 2019', '7.0.3')",
    "conformance.lab.preflight": (
        "m.preflight('6.7.0', '6.7', proxy_os='Windows Server 2019', config={'NoNfcSession': 1}, transports='hotadd')"
    ),
    "conformance.vsphere.about": "m.detect_release(type('About', (), {'build': '0', 'apiVersion': '7.0.3.0'}))",
    "conformance.runs.detection": "m.load_plan()",
    "conformance.certify.profile": "m.load_profile()",
    "conformance.plugin.settings": (
        "m._faults(','.join(__import__('conformance.knowledge.sim_faults').knowledge.sim_faults.FAULTS))"
    ),
    "conformance.knowledge.sim_faults": "m.check_faults(list(m.FAULTS))",
    "conformance.lab.target_file": "",
}
PROBE = """
import importlib, json, sys
m = importlib.import_module({module!r})
{calls}
print(json.dumps(sorted(n for n in sys.modules if any(n == f or n.startswith(f + ".") for f in {forbidden!r}))))
"""


def forbidden_imports(module: str, calls: str) -> list[str]:
    """The simulator modules loaded by importing `module` in a fresh interpreter and running `calls`."""
    code = textwrap.dedent(PROBE).format(module=module, calls=calls or "pass", forbidden=FORBIDDEN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("module", list(KNOWLEDGE))
def test_a_knowledge_module_does_not_import_the_simulator(module: str) -> None:
    assert forbidden_imports(module, KNOWLEDGE[module]) == []


def test_the_probe_sees_a_module_that_imports_the_simulator() -> None:
    """The hostile case: the simulated library's own module imports the simulator, and the probe says so."""
    assert "conformance.sim.storage.vmdk" in forbidden_imports("conformance.vixdisklib.simulated.library", "")


def test_the_probe_sees_a_function_level_import() -> None:
    """A lazy import inside a called function is caught too (a knowledge module that read the simulator's
    profiles only when asked would not slip through)."""
    calls = "m.embedded_simulator"  # not called: nothing yet
    assert forbidden_imports("conformance.lab.targets", calls) == []
    calls = "import conformance.sim.profiles as p; p.get_profile('7.0U3')"
    assert "conformance.sim.profiles" in forbidden_imports("conformance.lab.targets", calls)
