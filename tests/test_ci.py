"""`.ci/run` runs the conformance suites and the detection matrix, fatally, and ends with README's test command,
so a suite that breaks (or stops catching its bug) turns CI red and the closing line is pytest's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = (ROOT / ".ci" / "run").read_text()
README = (ROOT / "README.md").read_text()


def problems(script: str, readme: str) -> list[str]:
    """What is wrong with a CI script against the README (empty when nothing is)."""
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    test_command = re.search(r"Run the harness's own tests:\n\n```sh\n(.+)\n```", readme)
    found = []
    if "set -euo pipefail" not in commands[:3]:
        found.append("set -euo pipefail is not at the top")
    if test_command is None or commands[-1] != test_command.group(1):
        found.append("the last command is not README's test command")
    if not any(c == "vddk-conformance run" for c in commands):
        found.append("the conformance suites do not run")
    if not any(re.fullmatch(r'vddk-conformance detection-matrix -n 2 --out "?reports/.+', c) for c in commands):
        found.append("the detection matrix does not run into reports/")
    if any(c.endswith(("|| true", "|| :")) or c.startswith("set +e") for c in commands):
        found.append("a failure is swallowed")
    return found


def test_ci_runs_the_suites_and_the_detection_matrix_then_exactly_the_readme_test_command() -> None:
    assert problems(CI, README) == []
    assert "vddk-conformance detection-matrix" in README.split("## More")[0]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("set -euo pipefail", "set -uo pipefail", "set -euo pipefail is not at the top"),
        ("\nvddk-conformance run\n", "\nvddk-conformance run || true\n", "a failure is swallowed"),
        ("\nvddk-conformance run\n", "\n", "the conformance suites do not run"),
        ("vddk-conformance detection-matrix", "echo", "the detection matrix does not run into reports/"),
        ("python -m pytest tests -n 2", "python -m pytest tests -n 2\necho done", "not README's test command"),
    ],
)
def test_the_ci_check_fails_on_a_broken_script(old: str, new: str, problem: str) -> None:
    assert old in CI
    assert [p for p in problems(CI.replace(old, new, 1), README) if problem in p]
