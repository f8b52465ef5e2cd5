"""The HotAdd proxy support matrix (F2): its content, prefix matching, validation errors and the preflight check."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.knowledge.proxy_support import ProxySupportError, check_proxy, find_os, load_matrix, proxy_supported
from conformance.knowledge.versions import all_builds

NEW_IN_703 = ("Red Hat Enterprise Linux 8.3", "CentOS 8.3", "SUSE Linux Enterprise Server 15.1")
BEFORE_703 = [b.name for b in all_builds() if b.name != "7.0.3"]
#: guest OS text as vSphere reports it for the simulator's proxies -> matrix label
GUEST_TEXT = {
    "Red Hat Enterprise Linux 8.3 (Ootpa)": "Red Hat Enterprise Linux 8.3",
    "CentOS Linux 8.3.2011": "CentOS 8.3",
    "SUSE Linux Enterprise Server 15 SP1": "SUSE Linux Enterprise Server 15.1",
    "Red Hat Enterprise Linux Server 7.9 (Maipo)": "Red Hat Enterprise Linux 7.9",
    "Microsoft Windows Server 2019 Datacenter (64-bit)": "Windows Server 2019",
}
VALID = """\
[[os]]
label = "CentOS 8.3"
platform = "linux"
guest_prefixes = ["CentOS Linux 8.3"]
supported_from = "7.0.3"
source = "RN F2"
"""


def test_matrix_lists_the_three_new_operating_systems_from_7_0_3() -> None:
    since = {entry.label: entry.supported_from.name for entry in load_matrix()}
    assert {label: since[label] for label in NEW_IN_703} == dict.fromkeys(NEW_IN_703, "7.0.3")


@pytest.mark.parametrize("os_label", NEW_IN_703)
def test_new_operating_system_is_supported_on_7_0_3(os_label: str) -> None:
    support = proxy_supported(os_label, "7.0.3")
    assert support.supported and os_label in support.reason


@pytest.mark.parametrize("build", BEFORE_703)
@pytest.mark.parametrize("os_label", NEW_IN_703)
def test_new_operating_system_is_not_supported_before_7_0_3(os_label: str, build: str) -> None:
    support = proxy_supported(os_label, build)
    assert not support.supported and "7.0.3" in support.reason and build in support.reason


@pytest.mark.parametrize(("guest_text", "label"), GUEST_TEXT.items())
def test_guest_os_text_matches_its_entry_by_prefix(guest_text: str, label: str) -> None:
    entry = find_os(guest_text)
    assert entry is not None and entry.label == label


@pytest.mark.parametrize("os_text", ["CentOS Linux 8.2.2004", "Ubuntu 20.04", "Red Hat Enterprise Linux 8.2", ""])
def test_an_os_outside_the_matrix_is_unsupported(os_text: str) -> None:
    assert find_os(os_text) is None
    assert not proxy_supported(os_text, "7.0.3").supported


@pytest.mark.parametrize(
    ("os_label", "build"), [("Windows Server 2019", "6.7.0"), ("Red Hat Enterprise Linux 7.9", "7.0.0")]
)
def test_older_operating_systems_are_supported_from_their_first_build(os_label: str, build: str) -> None:
    assert proxy_supported(os_label, build).supported


NEW_GUEST_TEXT = [text for text, label in GUEST_TEXT.items() if label in NEW_IN_703]


@pytest.mark.parametrize("guest_text", NEW_GUEST_TEXT)
def test_check_reports_nothing_for_a_new_proxy_os_on_7_0_3(guest_text: str) -> None:
    """Was F2-002 in suites/: the check accepts the guest OS text the proxies report on the build adding it."""
    assert check_proxy(guest_text, "7.0.3") == []


@pytest.mark.parametrize("guest_text", NEW_GUEST_TEXT)
def test_check_reports_a_new_proxy_os_on_7_0_2_in_one_line(guest_text: str) -> None:
    """Was F2-003 in suites/: one line naming the matrix label and the build that lacks it."""
    (problem,) = check_proxy(guest_text, "7.0.2")
    assert "\n" not in problem and GUEST_TEXT[guest_text] in problem and "7.0.2" in problem


@pytest.mark.parametrize(
    ("os_label", "build", "words"),
    [
        ("Red Hat Enterprise Linux 8.3", "7.0.2", ("Red Hat Enterprise Linux 8.3", "7.0.2", "7.0.3")),
        ("SUSE Linux Enterprise Server 15 SP1", "6.7.3", ("SUSE Linux Enterprise Server 15.1", "6.7.3")),
        ("Ubuntu 20.04", "7.0.3", ("Ubuntu 20.04", "not in")),
        ("CentOS 8.3", "9.9.9", ("9.9.9", "unknown VDDK build")),
    ],
)
def test_check_reports_one_line_problem(os_label: str, build: str, words: tuple[str, ...]) -> None:
    problems = check_proxy(os_label, build)
    assert len(problems) == 1 and "\n" not in problems[0]
    assert all(word in problems[0] for word in words)


def test_custom_matrix_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text(VALID)
    matrix = load_matrix(path)
    assert [e.label for e in matrix] == ["CentOS 8.3"]
    assert check_proxy("Red Hat Enterprise Linux 8.3", "7.0.3", matrix) != []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[os]\n", ("not valid TOML",)),
        ("x = 1\n", ("unknown top-level key", "'x'")),
        ("", ("no [[os]] tables",)),
        (VALID.replace('platform = "linux"', 'platform = "beos"'), ("platform", "beos")),
        (VALID.replace('"7.0.3"', '"7.0.9"'), ("supported_from", "7.0.9")),
        (VALID.replace('source = "RN F2"', 'source = ""'), ("source",)),
        (VALID + 'colour = "red"\n', ("unknown key", "colour")),
        (VALID.replace('["CentOS Linux 8.3"]', "[1]"), ("guest_prefixes",)),
        (VALID + VALID.replace('label = "CentOS 8.3"', 'label = "CentOS"'), ("overlaps",)),
    ],
)
def test_broken_matrix_is_a_one_line_error(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text(text)
    with pytest.raises(ProxySupportError) as raised:
        load_matrix(path)
    message = str(raised.value)
    assert "\n" not in message and all(word in message for word in words)
