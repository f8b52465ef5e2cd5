"""Fixtures for the partner sample (examples/c-backup/vddkc_sample.c), a backup program in C that uses only the
public VixDiskLib ABI: the build (reusable against any folder holding a libvixDiskLib.so.7), the harness's C
double of that library, datastores in the simulator's on-disk format, a runner that checks what every run must
satisfy (no secret in the output, one JSON line on success) and byte comparisons of sparse images and disks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.sim.storage.vmdk_flat import merge_extents
from conformance.vixdisklib.config import render_config
from tests.native.conftest import _compile

REPO = Path(__file__).resolve().parents[2]
SAMPLE_SOURCE = REPO / "examples" / "c-backup" / "vddkc_sample.c"
HEADER_DIR = REPO / "conformance" / "vixdisklib" / "shim" / "c"
LIBRARY = "libvixDiskLib.so.7"

PASSWORD = "Partner-Secret-pw-0815"
COOKIE = "vmware_soap_session=52c3e2ab-cookie-4242"
PASSWORD_ENV = "VDDKC_SAMPLE_PASSWORD"
COOKIE_ENV = "VDDKC_SAMPLE_COOKIE"
SERVER = "vcenter.example.test"
USER = "backup@vsphere.local"
THUMBPRINT = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD"
VM = "moref=vm-42"
SNAPSHOT = "snapshot-7"
TRANSPORTS = "nbdssl:nbd"
MiB = 1024 * 1024
GiB = 1024 * MiB
_COMPARE_CHUNK = 8 * MiB
#: how the sample prefixes the library's log, warning and panic callbacks on stderr
LIBRARY_PREFIXES = ("vddk: ", "vddk warning: ", "vddk panic: ")

Pieces = Sequence[tuple[int, bytes]]


def build_sample(out_dir: Path, libdir: Path) -> Path:
    """Compile vddkc_sample into `out_dir`, linked against `libdir`/libvixDiskLib.so.7 with warnings as errors
    (C11, -Wall -Wextra); returns the binary, to run with LD_LIBRARY_PATH=libdir. Skips when gcc is missing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the C sample cannot be built")
    if not (libdir / LIBRARY).is_file():
        raise FileNotFoundError(f"{libdir / LIBRARY} does not exist: the sample links against it")
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / "vddkc_sample"
    command = [
        "gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", f"-I{HEADER_DIR}",
        "-o", str(binary), str(SAMPLE_SOURCE), f"-L{libdir}", f"-l:{LIBRARY}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        pytest.fail(f"compiling {SAMPLE_SOURCE.name} failed:\n{result.stderr.strip()}", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def double_libdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the harness's VixDiskLib double built as libvixDiskLib.so.7."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the VixDiskLib test double cannot be built")
    libdir = tmp_path_factory.mktemp("vixdisklib-double")
    _compile(libdir / LIBRARY, "VIXDOUBLE_MAJOR=7")
    return libdir


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory, double_libdir: Path) -> Path:
    return build_sample(tmp_path_factory.mktemp("vddkc-sample"), double_libdir)


# ---- datastores in the simulator's format (served by the double from $VIXDOUBLE_DISK_ROOT) --------------------


@dataclass(frozen=True)
class Datastore:
    """`[ds1] vm/NAME.vmdk` disks under `root` (the double's VIXDOUBLE_DISK_ROOT)."""

    root: Path
    name: str = "ds1"
    folder: str = "vm"

    def host_path(self, ds_path: str) -> Path:
        name, rest = ds_path[1:].split("] ", 1)
        return self.root / name / rest

    def create(self, name: str, capacity: int, pieces: Pieces = ()) -> str:
        """A thin flat base disk holding `pieces` (written in order); its datastore path."""
        ds_path = f"[{self.name}] {self.folder}/{name}.vmdk"
        path = self.host_path(ds_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with VirtualDiskFile.create(path, capacity) as disk:
            for offset, data in pieces:
                disk.write(offset, data)
        return ds_path

    def create_delta(self, name: str, parent: str, pieces: Pieces = ()) -> str:
        """A sparse delta (a snapshot's redo log) over `parent` holding `pieces`; its datastore path."""
        ds_path = f"[{self.name}] {self.folder}/{name}.vmdk"
        with (
            VirtualDiskFile.open(self.host_path(parent)) as base,
            VirtualDiskFile.create_delta(self.host_path(ds_path), base) as delta,
        ):
            for offset, data in pieces:
                delta.write(offset, data)
        return ds_path

    def write(self, ds_path: str, offset: int, data: bytes) -> None:
        with VirtualDiskFile.open(self.host_path(ds_path)) as disk:
            disk.write(offset, data)

    def read(self, ds_path: str, offset: int, length: int) -> bytes:
        with VirtualDiskFile.open(self.host_path(ds_path)) as disk:
            return disk.read(offset, length)


@pytest.fixture
def datastore(tmp_path: Path) -> Datastore:
    root = tmp_path / "datastores"
    root.mkdir()
    return Datastore(root)


# ---- byte comparisons that stay fast on multi-GiB sparse files ---------------------------------------------------


def data_regions(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of the file's data (SEEK_DATA/SEEK_HOLE); everything else reads as zeros."""
    regions: list[tuple[int, int]] = []
    with path.open("rb") as f:
        fd, size, offset = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole up to the end
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            regions.append((start, end - start))
            offset = end
    return regions


def _assert_windows_equal(
    read_a: Callable[[int, int], bytes],
    read_b: Callable[[int, int], bytes],
    windows: Iterable[tuple[int, int]],
    what: str,
) -> None:
    for start, length in windows:
        for offset in range(start, start + length, _COMPARE_CHUNK):
            count = min(_COMPARE_CHUNK, start + length - offset)
            a, b = read_a(offset, count), read_b(offset, count)
            if a != b:
                first = next(i for i in range(count) if i >= len(a) or i >= len(b) or a[i] != b[i])
                pytest.fail(f"{what}: first difference at byte {offset + first}", pytrace=False)


def _file_reader(path: Path) -> tuple[Callable[[int, int], bytes], Callable[[], None]]:
    fd = os.open(path, os.O_RDONLY)

    def read(offset: int, length: int) -> bytes:
        data = os.pread(fd, length, offset)
        return data + bytes(length - len(data))

    return read, lambda: os.close(fd)


def assert_image_matches_disk(image: Path, disk_descriptor: Path) -> None:
    """The raw image holds exactly the disk's content (read through its chain by the simulator): same size, and
    equal over every region where either one holds data (elsewhere both read as zeros)."""
    with VirtualDiskFile.open(disk_descriptor) as disk:
        assert image.stat().st_size == disk.capacity, f"{image.name} is not the size of the disk"
        windows = merge_extents(data_regions(image) + disk.allocated_extents())
        read, close = _file_reader(image)
        try:
            _assert_windows_equal(read, disk.read, windows, f"{image.name} vs {disk_descriptor.name}")
        finally:
            close()


def assert_files_equal(a: Path, b: Path) -> None:
    """Two (sparse) files hold the same bytes."""
    assert a.stat().st_size == b.stat().st_size, f"{a.name} and {b.name} differ in size"
    read_a, close_a = _file_reader(a)
    read_b, close_b = _file_reader(b)
    try:
        _assert_windows_equal(read_a, read_b, merge_extents(data_regions(a) + data_regions(b)), f"{a.name} vs {b.name}")
    finally:
        close_a()
        close_b()


def write_image(path: Path, size: int, pieces: Pieces) -> Path:
    """A sparse raw image of `size` bytes holding `pieces` (written in order)."""
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in pieces:
            os.pwrite(f.fileno(), data, offset)
    return path


# ---- running the sample -----------------------------------------------------------------------------------------


@dataclass
class SampleRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        """The one JSON line a successful run prints."""
        lines = self.stdout.splitlines()
        assert self.returncode == 0, f"exit {self.returncode}:\n{self.stderr}"
        assert len(lines) == 1, f"want one JSON line on stdout, got {self.stdout!r}"
        return json.loads(lines[0])

    @property
    def own_lines(self) -> list[str]:
        """The sample's own stderr lines (not the library's `vddk...` log lines)."""
        return [line for line in self.stderr.splitlines() if not line.startswith(LIBRARY_PREFIXES)]

    @property
    def library_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(LIBRARY_PREFIXES)]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("vddk warning:")]


@dataclass
class SampleRunner:
    """Runs the sample against one library; every run is checked for leaked secrets and, when `session_dir` is
    given (the double's tmpDirectory), for a connection that was never disconnected."""

    binary: Path
    libdir: Path
    config: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    session_dir: Path | None = None
    secrets: tuple[str, ...] = (PASSWORD, COOKIE)
    timeout: float = 120.0

    def args(self, mode: str, disk: str, image: Path, *extra: str, snapshot: bool = True) -> list[str]:
        """The usual command line: password from the environment, nbdssl:nbd, this library's folder."""
        args = [
            mode, "--server", SERVER, "--thumbprint", THUMBPRINT, "--user", USER, "--password-env", PASSWORD_ENV,
            "--vm", VM, "--disk", disk, "--transport", TRANSPORTS, "--libdir", str(self.libdir), "--image", str(image),
        ]  # fmt: skip
        if self.config is not None:
            args += ["--config", str(self.config)]
        if snapshot and mode != "restore":
            args += ["--snapshot", SNAPSHOT]
        return args + list(extra)

    def run(self, args: Sequence[str], env: dict[str, str | None] | None = None) -> SampleRun:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("VIXDOUBLE_")}
        environment.update(self.env)
        environment.update({"LD_LIBRARY_PATH": str(self.libdir), PASSWORD_ENV: PASSWORD, COOKIE_ENV: COOKIE})
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        with subprocess.Popen(
            [str(self.binary), *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
                pytest.fail(f"vddkc_sample hung for {self.timeout} s: {stderr}", pytrace=False)
        run = SampleRun(list(args), process.returncode, stdout, stderr)
        for secret in self.secrets:
            assert secret not in stdout and secret not in stderr, "a secret reached the sample's output"
        if self.session_dir is not None and self.session_dir.exists():
            left = sorted(p.name for p in self.session_dir.glob(f"vixdouble-{process.pid}-*.session"))
            assert not left, f"connections never disconnected: {left}"
        return run


@pytest.fixture
def vddk_tmp(tmp_path: Path) -> Path:
    return tmp_path / "vddk-tmp"


@pytest.fixture
def runner(sample: Path, double_libdir: Path, datastore: Datastore, tmp_path: Path, vddk_tmp: Path) -> SampleRunner:
    """The sample over the double, serving `datastore`, with a config whose tmpDirectory is `vddk_tmp`."""
    config = tmp_path / "vddk.conf"
    config.write_text(render_config({"tmpDirectory": str(vddk_tmp)}))
    return SampleRunner(
        sample, double_libdir, config, env={"VIXDOUBLE_DISK_ROOT": str(datastore.root)}, session_dir=vddk_tmp
    )
