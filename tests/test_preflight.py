"""The preflight (conformance.lab.preflight): C4 pairs, F2 proxy OS, F1/K5/K6 InitEx configuration — one line each."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conformance.knowledge.versions import supported_pairs
from conformance.lab.dataplane_check import LAB_PROBLEM, DataPlaneEndpoint, unreachable
from conformance.lab.preflight import WARNING, preflight

NO_NFC = "vixDiskLib.transport.hotadd.NoNfcSession"
SIZE, COUNT = "vixDiskLib.nfcAio.Session.BufSizeIn64KB", "vixDiskLib.nfcAio.Session.BufCount"


def one_line_each(lines: list[str]) -> list[str]:
    for line in lines:
        assert line and "\n" not in line and "Traceback" not in line, line
    return lines


@pytest.mark.parametrize(("build", "vsphere"), [(b.name, v.name) for b, v in supported_pairs()])
def test_every_supported_pair_passes(build: str, vsphere: str) -> None:
    assert preflight(build, vsphere) == []


@pytest.mark.parametrize(
    ("build", "vsphere"),
    [
        ("6.5.0", "M8"),
        ("6.5.0", "M9"),
        ("6.5.4", "M10"),
        ("6.5.2 EP1", "M16"),
        ("6.5.3", "M16"),
        ("6.7.3", "8.0"),
        ("6.5.4", "7.0U3"),
        ("6.5.0", "8.0"),
    ],
)
def test_an_unsupported_pair_is_one_unsupported_line(build: str, vsphere: str) -> None:
    (line,) = one_line_each(preflight(build, vsphere))
    assert line.startswith("unsupported:") and build in line and vsphere in line


#: pairs at the edges of the policy the release notes allow (was C4-004 in suites/; independent of the
#: policy code that generates supported_pairs)
RELEASE_NOTE_SUPPORTED = [
    ("6.5.2", "M8"),
    ("6.5.2 EP1", "M9"),
    ("6.5.4", "M9"),
    ("6.7.0", "M10"),
    ("7.0.3", "M16"),
    ("7.0.3", "6.5"),  # N-2
    ("7.0.3", "8.0"),  # N+1
    ("6.7.3", "7.0U3"),
    ("6.5.0", "6.7U3"),
]


@pytest.mark.parametrize(("build", "vsphere"), RELEASE_NOTE_SUPPORTED)
def test_a_pair_the_release_notes_allow_passes(build: str, vsphere: str) -> None:
    assert preflight(build, vsphere) == []


@pytest.mark.parametrize(
    ("build", "vsphere", "named"),
    [("7.0.9", "7.0U3", "VDDK build"), ("7.0.3", "9.9", "vSphere version"), ("x", "y", "VDDK build")],
)
def test_an_unknown_build_or_version_is_a_line_not_a_traceback(build: str, vsphere: str, named: str) -> None:
    lines = one_line_each(preflight(build, vsphere, proxy_os="CentOS 8.3", config={NO_NFC: 1}))
    assert lines and lines[0].startswith(named)


@pytest.mark.parametrize(
    ("proxy_os", "build", "problems"),
    [
        ("Red Hat Enterprise Linux 8.3 (Ootpa)", "7.0.3", 0),
        ("CentOS 8.3", "7.0.2", 1),
        ("SUSE Linux Enterprise Server 15.1", "6.7.3", 1),
        ("Red Hat Enterprise Linux 7.9", "7.0.0", 0),
        ("Plan 9", "7.0.3", 1),
    ],
)
def test_the_proxy_os_is_checked_against_the_build(proxy_os: str, build: str, problems: int) -> None:
    lines = one_line_each(preflight(build, "7.0U3", proxy_os=proxy_os))
    assert len(lines) == problems
    assert all("proxy" in line for line in lines)


@pytest.mark.parametrize(
    ("build", "size", "count", "over"),
    [
        ("7.0.3", 1, 4, False),
        ("7.0.3", 16, 16, False),
        ("7.0.3", 16, 17, True),
        ("7.0.3", 256, 1, False),
        ("7.0.3", 257, 1, True),
        ("7.0.3", 1, 256, False),
        ("7.0.3", 1, 257, True),
        ("7.0.2", 16, 17, False),  # builds before 7.0.3 ignore the keys
        ("6.7.3", 257, 1, False),
    ],
)
def test_the_nfc_aio_session_limit_is_a_problem_where_the_build_honours_the_keys(
    build: str, size: int, count: int, over: bool
) -> None:
    lines = one_line_each(preflight(build, "7.0U3", config={SIZE: size, COUNT: count}))
    assert len(lines) == int(over)
    assert all("16 MiB" in line for line in lines)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (SIZE, 0),
        (COUNT, -1),
        (COUNT, "many"),
        ("vixDiskLib.phoneHome.ProductName", "Backup&Co"),
        ("vixDiskLib.phoneHome.ProductVersion", "1.0;2"),
        ("vixDiskLib.phoneHome.EnablePhoneHome", "yes"),
        (NO_NFC, 2),
    ],
)
def test_a_malformed_config_value_is_one_line_naming_the_key(key: str, value: str | int) -> None:
    (line,) = one_line_each(preflight("7.0.3", "7.0U3", config={key: value}))
    assert key in line


def test_a_phone_home_value_with_an_unquoted_space_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "vddk.conf"
    path.write_text("vixDiskLib.phoneHome.ProductName = Backup App\n")
    (line,) = one_line_each(preflight("7.0.3", "7.0U3", config=path))
    assert "double quotes" in line and str(path) in line


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    (line,) = one_line_each(preflight("7.0.3", "7.0U3", config=tmp_path / "missing.conf"))
    assert "does not exist" in line


@pytest.mark.parametrize(
    ("vsphere", "no_nfc", "problem"),
    [("M8", None, True), ("M10", 0, True), ("M16", 1, False), ("M12", 1, False), ("7.0U3", None, False)],
)
def test_vmc_after_m5_needs_no_nfc_session_1(vsphere: str, no_nfc: int | None, problem: bool) -> None:
    config = {} if no_nfc is None else {NO_NFC: no_nfc}
    lines = one_line_each(preflight("7.0.3", vsphere, config=config))
    assert len(lines) == int(problem)
    assert all(NO_NFC in line and "=1" in line for line in lines)


@pytest.mark.parametrize(
    ("build", "vsphere", "no_nfc", "transports", "warned"),
    [
        ("6.7.0", "6.7", 1, "hotadd", True),
        ("6.7.1", "6.7U1", 1, "hotadd:nbdssl", True),
        ("6.7.1", "6.7U1", 0, "hotadd", False),  # the workaround
        ("6.7.0", "6.7", 1, "nbdssl", False),  # no HotAdd
        ("6.7.2", "6.7", 1, "hotadd", False),  # fixed build
        ("7.0.3", "6.7U1", 1, "hotadd", False),
        ("6.7.1", "6.7U2", 1, "hotadd", False),  # fixed server
    ],
)
def test_k6_special_names_with_no_nfc_session_1_is_a_warning_naming_the_workaround(
    build: str, vsphere: str, no_nfc: int, transports: str, warned: bool
) -> None:
    lines = one_line_each(preflight(build, vsphere, config={NO_NFC: no_nfc}, transports=transports))
    assert len(lines) == int(warned)
    assert all(line.startswith(WARNING) and f"{NO_NFC}" in line and "set it to 0" in line for line in lines)


def test_a_proxy_os_implies_hotadd_for_the_k6_warning() -> None:
    lines = one_line_each(preflight("6.7.0", "6.7", proxy_os="Windows Server 2019", config={NO_NFC: 1}))
    assert [line for line in lines if line.startswith(WARNING)]


# --- D4: the data plane (the target preflight runs this after login; tests/lab/test_data_plane.py) ---


def test_the_data_plane_line_names_each_closed_host_its_port_and_the_fix() -> None:
    with socket.socket() as listening, socket.socket() as bound:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        bound.bind(("127.0.0.1", 0))  # bound, not listening: refused like a closed port
        open_port, closed_port = listening.getsockname()[1], bound.getsockname()[1]
        lines = unreachable(
            [
                DataPlaneEndpoint(("esx-a",), "127.0.0.1", open_port),
                DataPlaneEndpoint(("esx-b",), "127.0.0.1", closed_port),
            ]
        )
    assert lines == [
        f"{LAB_PROBLEM}: cannot connect to ESXi host esx-b at 127.0.0.1 TCP {closed_port} (Connection refused): "
        f"login and metadata work but every disk Open will fail (fix: open TCP {closed_port} from the proxy to "
        "ESXi host esx-b)"
    ]


def test_every_reachable_endpoint_means_no_line() -> None:
    assert unreachable([]) == []
