"""The harness's own building blocks: resource tracker, content digests, app loading, transport rules, patterns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conformance.knowledge.transports import reach
from conformance.lab.resources import ResourceTracker, TeardownError, resource_name
from conformance.sequences.app import BackupAppError, load_backup_app
from conformance.sequences.images import BLOCK, ContentDigest, SparseImage
from conformance.workloads import PATTERNS, expected_image, pattern
from tests.cli import run_cli


def test_teardown_is_last_in_first_out_and_collects_every_error() -> None:
    tracker = ResourceTracker("run")
    order: list[str] = []

    def fail(name: str) -> None:
        order.append(name)
        raise RuntimeError(f"{name} refused")

    tracker.add("snapshot", "a", lambda: order.append("a"))
    tracker.add("vm", "b", lambda: fail("b"))
    tracker.add("disk", "c", lambda: fail("c"))
    with pytest.raises(TeardownError) as caught:
        tracker.teardown()
    assert order == ["c", "b", "a"]
    assert [r.name for r, _ in caught.value.errors] == ["c", "b"]
    assert "2 resource(s) could not be cleaned up" in str(caught.value)
    assert tracker.pending() == []


def test_unwind_to_a_mark_undoes_only_the_scope() -> None:
    tracker = ResourceTracker("run")
    order: list[str] = []
    tracker.add("vm", "outer", lambda: order.append("outer"))
    mark = tracker.mark()
    tracker.add("snapshot", "inner", lambda: order.append("inner"))
    tracker.unwind(mark)
    assert order == ["inner"] and [r.name for r in tracker.pending()] == ["outer"]


def test_resource_names_carry_run_and_worker_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert resource_name("20261126-abc", "backup target/vm 1") == "vddkc-20261126-abc-gw3-backup-target-vm-1"


def test_names_for_a_long_purpose_stay_unique() -> None:
    """Backups of one VM name their snapshot and image folder after it: a long VM name must not make two
    backups share a name (the counter is kept, the purpose shortened)."""
    tracker = ResourceTracker("20261126-abc")
    purpose = "backup-vddkc-20261126-abc-gw3-vm-VMFS-1234567890"
    first, second = tracker.name(purpose), tracker.name(purpose)
    assert first != second
    assert all(len(n.split("-gw", 1)[-1]) <= 45 for n in (first, second))


def test_digest_ignores_zero_blocks_and_order() -> None:
    data = os.urandom(3 * BLOCK)
    forward, backward, padded = ContentDigest(), ContentDigest(), ContentDigest()
    forward.feed(0, data)
    for index in reversed(range(3)):
        backward.feed(index * BLOCK, data[index * BLOCK : (index + 1) * BLOCK])
    padded.feed(0, data + bytes(5 * BLOCK))
    assert forward.hexdigest() == backward.hexdigest() == padded.hexdigest()
    changed = ContentDigest()
    changed.feed(0, data[:-1] + b"\x00")
    assert changed.hexdigest() != forward.hexdigest()


def test_sparse_image_copy_and_digest(tmp_path: Path) -> None:
    image = SparseImage(tmp_path / "a.img", 64 * 2**20)
    image.write(40 * 2**20, b"x" * 1000)
    copy = image.copy_to(tmp_path / "b.img")
    assert copy.digest() == image.digest()
    assert (tmp_path / "b.img").stat().st_blocks * 512 < 2**20


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "use module:Class"),
        ("no_such_module_xyz:App", "cannot import"),
        ("json:NoSuchClass", "has no NoSuchClass"),
        ("json:JSONDecoder", "lacks backup, cleanup, restore"),
    ],
)
def test_bad_backup_apps_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(BackupAppError, match=message):
        load_backup_app(spec)


def test_reference_app_is_the_default() -> None:
    assert load_backup_app(None).name == "reference"


@pytest.mark.parametrize(
    ("transport", "datastore", "allowed"),
    [
        ("san", "VMFS", True),
        ("san", "vsan", False),
        ("san", "VVOL", False),
        ("san", "NFS", False),
        ("hotadd", "vsan", False),
        ("hotadd", "VVOL", True),
        ("nbd", "vsan", True),
        ("nbdssl", "NFS41", True),
    ],
)
def test_transport_reach(transport: str, datastore: str, allowed: bool) -> None:
    assert reach(transport, datastore).allowed is allowed


def test_hotadd_on_vsan_is_allowed_with_a_vsan_proxy() -> None:
    assert reach("hotadd", "vsan", proxy_datastore_type="vsan").allowed


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_patterns_are_deterministic_and_inside_the_disk(name: str) -> None:
    disk_pattern = pattern(name)
    assert disk_pattern.writes() == disk_pattern.writes()
    for offset, data in disk_pattern.writes() + disk_pattern.changes():
        assert offset >= 0 and offset + len(data) <= disk_pattern.disk_size


def test_expected_image_applies_write_sets_in_order(tmp_path: Path) -> None:
    image = expected_image(tmp_path / "e.img", 2**20, [(0, b"a" * 10)], [(5, b"b" * 10)])
    assert image.read(0, 15) == b"aaaaabbbbbbbbbb"


def test_run_command_writes_a_report_directory(tmp_path: Path) -> None:
    """The main job end to end on a small selection: exit 0, JUnit, allure-results and a summary."""
    result = run_cli(
        "run",
        "--reports",
        str(tmp_path),
        "--run-id",
        "t1",
        "-n",
        "0",
        "-k",
        "full_backup and nbdssl-VMFS-random",
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run_dir = tmp_path / "t1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"] == {"passed": 1} and summary["release_notes"] == {"C4": {"passed": 1}}
    assert (run_dir / "junit.xml").exists()
    assert (run_dir / "allure-results" / "environment.properties").read_text().startswith("vddk.build=7.0.3")
    assert any(p.name.endswith("-result.json") for p in (run_dir / "allure-results").iterdir())


def test_run_command_rejects_an_unknown_build_in_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--reports", str(tmp_path), "--vddk-build", "9.9.9", "-n", "0", timeout=120)
    assert result.returncode != 0
    assert "--vddk-build" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        ([], 0, "no problem found"),
        (["--vddk-build", "6.5.0", "--vsphere", "M8"], 1, "unsupported: VDDK 6.5.0 with VMC M8"),
        (["--proxy-os", "CentOS 8.3", "--vddk-build", "7.0.2"], 1, "HotAdd proxy OS not supported"),
    ],
)
def test_preflight_command_prints_one_line_per_problem(args: list[str], code: int, text: str) -> None:
    result = run_cli("preflight", *args, timeout=60)
    assert result.returncode == code and text in result.stdout
    assert "Traceback" not in result.stderr
