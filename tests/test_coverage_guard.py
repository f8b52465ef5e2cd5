"""Every release-note id of the catalog has conformance tests, every test names a known id, test ids are unique.

Ids not covered yet are listed explicitly (PENDING): the guard fails when a new gap appears, and also when a
listed gap gets covered, so the list can only shrink.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from conformance.knowledge.catalog import load_catalog

SUITES = Path(__file__).resolve().parent.parent / "suites"
#: release-note ids whose suites are still to be written (see the release-note suites issue)
PENDING: set[str] = set()


def _marker_args(name: str) -> list[tuple[str, str]]:
    """(file, first argument) of every call `*.name("...")` in the suites."""
    found = []
    for path in sorted(SUITES.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == name
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.append((path.name, str(node.args[0].value)))
    return found


def test_every_test_names_a_known_release_note_id() -> None:
    known = set(load_catalog().ids())
    unknown = [(f, i) for f, i in _marker_args("release_note") if i not in known]
    assert unknown == []


def test_every_release_note_id_has_tests_or_is_listed_as_pending() -> None:
    covered = {i for _, i in _marker_args("release_note")}
    missing = set(load_catalog().ids()) - covered
    assert missing == PENDING - covered, f"not covered: {sorted(missing)}; pending list says {sorted(PENDING)}"
    assert not (PENDING & covered), f"covered now, remove from PENDING: {sorted(PENDING & covered)}"


def test_test_ids_are_unique() -> None:
    counts = Counter(i for _, i in _marker_args("test_id"))
    assert [i for i, n in counts.items() if n > 1] == []


def _variants(keyword: str) -> set[tuple[str, str]]:
    """(release-note id, value) of every ``release_note("ID", keyword="value")`` in the suites."""
    found = set()
    for path in sorted(SUITES.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "release_note" or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            for kw in node.keywords:
                if kw.arg == keyword and isinstance(kw.value, ast.Constant):
                    found.add((str(node.args[0].value), str(kw.value.value)))
    return found


def test_every_workaround_and_control_case_has_a_test() -> None:
    catalog = load_catalog()
    for keyword, attribute in (("workaround", "workarounds"), ("control", "controls")):
        wanted = {(i, w.id) for i in catalog.ids() for w in getattr(catalog.get(i), attribute)}
        assert wanted - _variants(keyword) == set(), f"{attribute} without a test"
        assert _variants(keyword) - wanted == set(), f"tests name unknown {attribute}"
