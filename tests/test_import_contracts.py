"""The layering of `conformance/` is a contract import-linter checks (pyproject.toml, `[tool.importlinter]`): kept on
this tree, and broken (naming the contract) by a copy whose simulator imports the lab, the hostile case."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [str(LINT_IMPORTS), "--no-cache"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_layers_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_simulator_that_imports_the_lab_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "conformance", tmp_path / "conformance", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    server = tmp_path / "conformance" / "sim" / "server.py"
    server.write_text(server.read_text() + "\nimport conformance.lab.sweep  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "The simulator is built on knowledge only" in result.stdout and "BROKEN" in result.stdout
    assert "conformance.sim.server -> conformance.lab.sweep" in result.stdout


def import_cycles(tree: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = ROOT / "tests" / "_import_cycles.py"
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tree, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return result.stdout.splitlines()


def test_no_module_imports_itself_through_others_at_run_time() -> None:
    """Function-level imports included: a cycle hidden in a function body is still a cycle."""
    assert import_cycles(ROOT) == []


def test_a_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "conformance", tmp_path / "conformance", ignore=shutil.ignore_patterns("__pycache__"))
    # virtual_machine imports vm_clone (its clone methods); vm_clone importing it back inside a function closes a cycle
    clone = tmp_path / "conformance" / "sim" / "objects" / "vm_clone.py"
    hidden = "\n\ndef _hidden() -> None:\n    from conformance.sim.objects import virtual_machine  # noqa: F401\n"
    clone.write_text(clone.read_text() + hidden)
    found = import_cycles(tmp_path)
    assert any("conformance.sim.objects.vm_clone" in line and ".virtual_machine" in line for line in found), found
