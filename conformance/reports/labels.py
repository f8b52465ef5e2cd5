"""Allure labels, links and parameters of a conformance test, derived from its markers and the run settings.

Why here and why "complete" rather than "add": the ``vddk_labels`` fixture already labels tests that run, but a
fixture never runs for a test skipped at setup (not applicable on this build), so those had no epic, feature or link.
The plugin calls ``complete`` on every test result; it adds only what is missing, so nothing appears twice.
Run-level parameters (VDDK build, vSphere) are not excluded from Allure's history id: the same test on two builds
is two tests in a combined report, and the same test on the same build lines up across reports for the trend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.knowledge.catalog import CatalogError, load_catalog

SINGLE = ("epic", "feature", "story")
BUILD_PARAMETER = "VDDK build"
VSPHERE_PARAMETER = "vSphere"


def run_parameters(build: str, vsphere: str) -> list[tuple[str, str]]:
    """The parameters every test of a run carries (Allure shows them next to the test's own)."""
    return [(BUILD_PARAMETER, build), (VSPHERE_PARAMETER, vsphere)]


@dataclass
class Wanted:
    """What a test result should carry: single labels by name, tags, and (url, name) links."""

    labels: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def wanted(release_note: str | None, workaround: str | None = None, sequence: str | None = None) -> Wanted:
    """epic = release-note section, feature = "ID title", story = sequence, a link to the item, tags."""
    result = Wanted()
    if release_note:
        try:
            item = load_catalog().get(release_note)
        except CatalogError:
            item = None
        if item is not None:
            result.labels["epic"] = item.section
            result.labels["feature"] = f"{item.id} {item.title}"
            result.links.append((item.anchor, item.link_text))
    if sequence:
        result.labels["story"] = sequence
    if workaround:
        result.tags.append(f"workaround:{workaround}")
    return result


def complete(test_result: Any, want: Wanted) -> None:
    """Add to an allure ``TestResult`` the labels, tags and links of ``want`` that it does not have yet."""
    from allure_commons.model2 import Label, Link

    present = {(label.name, label.value) for label in test_result.labels}
    names = {label.name for label in test_result.labels}
    for name, value in want.labels.items():
        if name not in names:
            test_result.labels.append(Label(name=name, value=value))
    for tag in want.tags:
        if ("tag", tag) not in present:
            test_result.labels.append(Label(name="tag", value=tag))
    urls = {link.url for link in test_result.links}
    for url, name in want.links:
        if url not in urls:
            test_result.links.append(Link(type="link", url=url, name=name))


def add_parameters(test_result: Any, parameters: list[tuple[str, str]]) -> None:
    """Add run-level parameters that the result does not carry yet (before Allure computes the history id)."""
    from allure_commons.model2 import Parameter

    names = {p.name for p in test_result.parameters}
    for name, value in parameters:
        if name not in names:
            test_result.parameters.append(Parameter(name=name, value=value))
