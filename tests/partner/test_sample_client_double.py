"""The partner sample (examples/c-backup/vddkc_sample.c) against the harness's C double of libvixDiskLib.so.7:
full backups byte-equal to the disk (sparse 3 GiB disks with data beyond 2 GiB, holes and a delta chain),
incremental updates of exactly the changed areas, restores, async I/O, its error contract (exit 1 with the
library's error text, exit 2 for usage and image-size errors) and that secrets never reach its output."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.partner.conftest import (
    COOKIE_ENV,
    PASSWORD,
    PASSWORD_ENV,
    THUMBPRINT,
    Datastore,
    GiB,
    MiB,
    Pieces,
    SampleRunner,
    assert_files_equal,
    assert_image_matches_disk,
    data_regions,
    write_image,
)

CAPACITY = 3 * GiB
ASYNC = [pytest.param((), id="sync"), pytest.param(("--async", "4"), id="async4")]
FILE_ERROR_TEXT = "A file access error occurred on the host or guest operating system"


def pattern(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


#: a sparse 3 GiB base disk: data at sector 0, unaligned, across the 2 GiB line, beyond it, in the last sectors
BASE_PIECES: Pieces = [
    (0, pattern(1, 4096)),
    (MiB + 512, pattern(2, 70_000)),
    (2 * GiB - 8192, pattern(3, 16384)),
    (2 * GiB + 300 * MiB + 4096, pattern(4, 3 * MiB)),  # more than one 1 MiB --chunk-sectors piece
    (CAPACITY - 1024, pattern(5, 1024)),
]
#: a snapshot's delta over it: copy-on-write into a base area, and a new area, both beyond 2 GiB
DELTA_PIECES: Pieces = [
    (2 * GiB + 301 * MiB, pattern(6, 100_000)),
    (2 * GiB + 700 * MiB + 512, pattern(7, 200_000)),
]


def overlay(pieces: Pieces, offset: int, length: int) -> bytes:
    """What `pieces` (written in order onto zeros) hold in [offset, offset + length)."""
    out = bytearray(length)
    for start, data in pieces:
        lo, hi = max(start, offset), min(start + len(data), offset + length)
        if lo < hi:
            out[lo - offset : hi - offset] = data[lo - start : hi - start]
    return bytes(out)


def allocated_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.fixture
def chain(datastore: Datastore) -> str:
    """`[ds1] vm/base-000001.vmdk`: the delta over the base disk, what a backup of snapshot-7 reads."""
    base = datastore.create("base", CAPACITY, BASE_PIECES)
    return datastore.create_delta("base-000001", base, DELTA_PIECES)


def full_backup(runner: SampleRunner, disk: str, image: Path, *extra: str) -> dict[str, object]:
    return runner.run(runner.args("full", disk, image, *extra)).result


# ---- full ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ASYNC)
def test_full_backup_is_byte_equal_to_the_disk(
    runner: SampleRunner, datastore: Datastore, chain: str, tmp_path: Path, io: tuple[str, ...]
) -> None:
    image = tmp_path / "full.img"
    run = runner.run(runner.args("full", chain, image, *io))
    result = run.result
    assert result["mode"] == "full" and result["transport"] == "nbdssl"
    assert result["capacity_bytes"] == CAPACITY
    assert result["bytes_read"] == result["bytes_written"]
    assert sum(len(d) for _, d in BASE_PIECES) < result["bytes_read"] < 64 * MiB, "only allocated blocks are read"
    assert result["blocks"] >= len(BASE_PIECES) and isinstance(result["seconds"], float)
    assert_image_matches_disk(image, datastore.host_path(chain))
    pieces = [*BASE_PIECES, *DELTA_PIECES]
    with image.open("rb") as f:
        for offset, data in pieces:
            assert os.pread(f.fileno(), len(data), offset) == overlay(pieces, offset, len(data))
    assert allocated_bytes(image) < 64 * MiB, "the holes stay sparse"
    assert run.warnings == [], "ConnectParams, Close before Exit: the library has nothing to warn about"
    assert any("Open: [ds1] vm/base-000001.vmdk (2 links) over nbdssl, read-only" in x for x in run.library_lines)


def test_async_gives_the_same_bytes_as_sync(runner: SampleRunner, chain: str, tmp_path: Path) -> None:
    """Four requests in flight, in pieces that do not divide the 64 KiB blocks, completing on the library's
    thread: the image is the same as the synchronous one."""
    sync, async_ = tmp_path / "sync.img", tmp_path / "async.img"
    one = full_backup(runner, chain, sync)
    other = full_backup(runner, chain, async_, "--async", "4", "--chunk-sectors", "100")
    assert_files_equal(sync, async_)
    assert one["bytes_read"] == other["bytes_read"]


def test_qemu_img_agrees_the_image_equals_the_disk(
    runner: SampleRunner, datastore: Datastore, chain: str, tmp_path: Path
) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed: the independent image-vs-VMDK comparison is not possible here")
    image = tmp_path / "full.img"
    full_backup(runner, chain, image)
    command = ["qemu-img", "compare", "-f", "raw", "-F", "vmdk", str(image), str(datastore.host_path(chain))]
    compared = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_full_backup_loops_past_max_chunk_number_and_keeps_the_partial_last_chunk(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path
) -> None:
    """32 GiB is VIXDISKLIB_MAX_CHUNK_NUMBER chunks of 128 sectors: a bigger disk needs two
    QueryAllocatedBlocks calls (the double refuses more chunks per call), and its last 3 sectors, which are
    no whole chunk, are copied as allocated."""
    capacity = 32 * GiB + 128 * 1024 + 1536
    pieces = [
        (32 * GiB - 4096, pattern(11, 8192)),  # across the boundary of the two calls
        (32 * GiB + 64 * 1024 + 100, pattern(12, 3000)),
        (capacity - 1536, pattern(13, 1536)),  # the partial chunk
    ]
    disk = datastore.create("big", capacity, pieces)
    image = tmp_path / "big.img"
    result = full_backup(runner, disk, image)
    assert result["capacity_bytes"] == capacity
    assert_image_matches_disk(image, datastore.host_path(disk))
    with image.open("rb") as f:
        assert os.pread(f.fileno(), 1536, capacity - 1536) == pieces[2][1]


# ---- incremental ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ASYNC)
def test_incremental_updates_exactly_the_changed_areas(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path, io: tuple[str, ...]
) -> None:
    disk = datastore.create("disk", CAPACITY, BASE_PIECES)
    image = tmp_path / "disk.img"
    full_backup(runner, disk, image)
    changed = {  # (offset, length) in bytes -> new data, as CBT would report them
        (2 * GiB + 100 * MiB, 2 * MiB + 1536): pattern(21, 2 * MiB + 1536),  # beyond 2 GiB, 3 pieces
        (512, 512): pattern(22, 512),  # inside the first allocated block
        (2 * GiB - 8192, 4096): bytes(4096),  # zeroed (e.g. a trim): the image must follow
    }
    unlisted = (GiB, 64 * 1024)  # written too, but not in the changed areas
    old_unlisted = datastore.read(disk, *unlisted)
    for (offset, _), data in changed.items():
        datastore.write(disk, offset, data)
    datastore.write(disk, unlisted[0], pattern(23, unlisted[1]))
    areas = tmp_path / "changed.txt"
    areas.write_text(
        "# QueryChangedDiskAreas of snapshot-8 since snapshot-7\n\n" + "".join(f"{o} {n}\n" for o, n in changed)
    )

    result = runner.run(runner.args("incremental", disk, image, "--changed", str(areas), *io)).result
    assert result["mode"] == "incremental"
    assert result["bytes_read"] == result["bytes_written"] == sum(n for _, n in changed)
    assert result["blocks"] == len(changed)
    with image.open("rb") as f:
        for (offset, length), data in changed.items():
            assert os.pread(f.fileno(), length, offset) == data
        assert os.pread(f.fileno(), unlisted[1], unlisted[0]) == old_unlisted, "an unlisted area was copied"
    datastore.write(disk, unlisted[0], old_unlisted)  # the disk as if only the listed areas had changed
    assert_image_matches_disk(image, datastore.host_path(disk))


# ---- restore -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io", ASYNC)
def test_restore_onto_a_fresh_thin_disk_makes_it_equal_to_the_image(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path, io: tuple[str, ...]
) -> None:
    image = write_image(tmp_path / "restore.img", CAPACITY, [*BASE_PIECES, *DELTA_PIECES])
    target = datastore.create("target", CAPACITY)
    run = runner.run(runner.args("restore", target, image, "--skip-zero", *io))
    result = run.result
    assert result["mode"] == "restore" and result["capacity_bytes"] == CAPACITY
    assert 0 < result["bytes_written"] < 64 * MiB, "--skip-zero writes only the pieces holding data"
    assert any("over nbdssl, read-write" in line for line in run.library_lines)
    assert_image_matches_disk(image, datastore.host_path(target))
    assert allocated_bytes(datastore.host_path(target).with_name("target-flat.vmdk")) < 64 * MiB


@pytest.mark.parametrize("io", ASYNC)
def test_restore_without_skip_zero_overwrites_everything(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path, io: tuple[str, ...]
) -> None:
    size = 8 * MiB
    target = datastore.create("used", size, [(0, b"\xee" * size)])  # a disk with old data everywhere
    image = write_image(tmp_path / "small.img", size, [(3 * MiB + 512, pattern(31, 100_000))])
    result = runner.run(runner.args("restore", target, image, "--chunk-sectors", "300", *io)).result
    assert result["bytes_read"] == result["bytes_written"] == size
    assert result["blocks"] == -(-size // (300 * 512))
    assert datastore.read(target, 0, size) == image.read_bytes()


@pytest.mark.parametrize("delta", [-512, 512])
def test_restore_refuses_an_image_of_another_size(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path, delta: int
) -> None:
    target = datastore.create("target", CAPACITY)
    image = write_image(tmp_path / "wrong.img", CAPACITY + delta, [(0, pattern(41, 4096))])
    run = runner.run(runner.args("restore", target, image, "--skip-zero"))
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.own_lines) == 1 and str(CAPACITY + delta) in run.own_lines[0], run.stderr
    assert data_regions(datastore.host_path(target).with_name("target-flat.vmdk")) == [], "nothing was written"
    assert run.warnings == []


# ---- failures and secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("io", "call"), [((), "VixDiskLib_Read"), (("--async", "4"), "VixDiskLib_ReadAsync")])
def test_a_failing_read_exits_1_with_the_error_line_and_releases_everything(
    runner: SampleRunner, chain: str, tmp_path: Path, io: tuple[str, ...], call: str
) -> None:
    run = runner.run(runner.args("full", chain, tmp_path / "x.img", *io), env={"VIXDOUBLE_FAIL_READ": "2:7"})
    assert run.returncode == 1 and run.stdout == ""
    assert run.own_lines == [f"vddkc_sample: {call} failed: {FILE_ERROR_TEXT} (error 7)"]
    assert run.warnings == ["vddk warning: Read 2: injected failure 7"], "Exit found a disk still open"
    assert run.library_lines[-1] == "vddk: VixDiskLib double exiting"  # Exit; the runner saw the Disconnect


def test_a_failing_open_exits_1(runner: SampleRunner, chain: str, tmp_path: Path) -> None:
    run = runner.run(runner.args("full", chain, tmp_path / "x.img"), env={"VIXDOUBLE_FAIL_OPEN": "4"})
    assert run.returncode == 1
    assert run.own_lines == ["vddkc_sample: VixDiskLib_Open failed: A file was not found (error 4)"]


def test_secrets_never_reach_the_output(runner: SampleRunner, datastore: Datastore, tmp_path: Path) -> None:
    """The runner checks every run; these are the ways a secret could leak: library text that contains it
    (masked), a session cookie, and the password typed where only a variable's name belongs."""
    disk = datastore.create("small", 4 * MiB, [(0, pattern(51, 8192))])
    image = tmp_path / "small.img"
    args = runner.args("full", disk, image)
    user_with_secret = [a if a != "backup@vsphere.local" else f"svc-{PASSWORD}" for a in args]
    run = runner.run(user_with_secret)
    assert run.returncode == 0 and "user svc-******** vm moref=vm-42" in run.stderr
    cookie = [COOKIE_ENV if a == PASSWORD_ENV else a for a in args]
    cookie[cookie.index("--password-env")] = "--cookie-env"
    assert runner.run(cookie).returncode == 0
    for mistake in (["--password", PASSWORD], [f"--password={PASSWORD}"], ["--password-env", PASSWORD]):
        at = args.index("--password-env")
        run = runner.run([*args[:at], *mistake, *args[at + 2 :]])
        assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run.stderr


@pytest.mark.parametrize("misuse", [None, "qab-off-thread", "threads-before-init", "skip-cleanup"])
def test_thread_misuse_still_backs_up_and_cleanup_runs_unless_skipped(
    runner: SampleRunner, datastore: Datastore, tmp_path: Path, vddk_tmp: Path, misuse: str | None
) -> None:
    """The double does not police threads, so every mode copies the same bytes; Cleanup (with the connect's
    params: the double only cleans for a remote server) removes a dead process's leftover session."""
    disk = datastore.create("small", 4 * MiB, [(MiB, pattern(61, 70_000))])
    vddk_tmp.mkdir()
    stale = vddk_tmp / "vixdouble-4194311-1.session"  # a pid above Linux's pid_max: that process is gone
    stale.write_text("vcenter.example.test\n")
    image = tmp_path / "small.img"
    result = full_backup(runner, disk, image, *(["--misuse", misuse] if misuse else []))
    assert_image_matches_disk(image, datastore.host_path(disk))
    assert isinstance(result["blocks"], int) and result["blocks"] >= 1
    assert stale.exists() == (misuse == "skip-cleanup")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([], None),
        (["differential"], None),
        (["full", "--server"], None),
        (["full", "--thumbprint", "AA:BB"], None),
        (["--help-me"], None),
        (["full", "--skip-zero"], None),
        (["restore", "--snapshot", "snapshot-7"], None),
        (["full", "--changed", "c.txt"], None),
        (["incremental"], None),
        (["full", "--async", "0"], None),
        (["full", "--misuse", "everything"], None),
        (["incremental", "--misuse", "qab-off-thread"], None),
        (["full"], {PASSWORD_ENV: None}),
    ],
    ids=lambda v: (" ".join(v) or "no-mode") if isinstance(v, list) else ("no-password-variable" if v else ""),
)
def test_usage_errors_exit_2_with_one_line_before_touching_the_library(
    runner: SampleRunner, chain: str, tmp_path: Path, args: list[str], env: dict[str, str | None] | None
) -> None:
    full = runner.args("full", chain, tmp_path / "x.img")[1:]  # everything valid but the mode
    if args and args[0] in ("full", "incremental", "restore"):
        args = [args[0], *full, *args[1:]]
    run = runner.run(args, env=env)
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("vddkc_sample: "), run.stderr
    assert not (tmp_path / "x.img").exists(), "refused before the image was created"


def test_thumbprint_forms(runner: SampleRunner, datastore: Datastore, tmp_path: Path) -> None:
    """SHA-1 and SHA-256 thumbprints are accepted; anything else is a usage error."""
    disk = datastore.create("small", MiB)
    sha256 = ":".join(["9F"] * 32)
    for thumbprint, code in ((THUMBPRINT.lower(), 0), (sha256, 0), (THUMBPRINT + ":00", 2), ("AA-BB", 2)):
        args = runner.args("full", disk, tmp_path / "t.img")
        args[args.index("--thumbprint") + 1] = thumbprint
        assert runner.run(args).returncode == code, thumbprint
