"""The program set: what a simulated guest runs through StartProgramInGuest.

The same workload code must run against real and simulated VMs, so the simulated guests answer to the
program paths a real Linux or Windows guest has, with the same arguments and exit codes:

Linux guests (`/bin/<name>` and `/usr/bin/<name>` both work):

* `dd` — a subset of GNU coreutils dd. Operands `if=`, `of=`, `bs=`, `ibs=`, `obs=`, `count=`, `skip=`,
  `seek=`, `conv=`, `iflag=`, `oflag=`, `status=`. Sizes take dd's suffixes (c=1, w=2, b=512, kB=1000,
  K=KiB=1024, MB, M=MiB, GB, G=GiB, T, P, E and `x` products such as `2x512`). `if=` is a guest file,
  `/dev/zero`, `/dev/urandom`, `/dev/null` or a disk; `of=` is a guest file, `/dev/null` or a disk, where
  `/dev/sda`, `/dev/sdb`, ... are the VM's disks in controller and unit-number order. `conv=` accepts
  notrunc, fsync, fdatasync, sync (pad input blocks with NULs), sparse, noerror, nocreat, excl;
  `iflag=` skip_bytes, count_bytes, fullblock, direct, dsync, sync, nocache, noatime, nonblock;
  `oflag=` seek_bytes, append, direct, dsync, sync, nocache, noatime, nonblock. Disk writes go through
  `DiskState.write`, so snapshots and changed block tracking see them. Writing past the end of a disk
  writes what fits and exits 1 ("No space left on device"), as dd on a block device does; an output
  file stops at GUEST_FILE_MAX bytes the same way. Without `if=` the input is empty (there is no
  stdin); without `of=` the output is discarded. `of=/sys/class/block/sdX/device/rescan` (a Linux
  guest rereading the size of a hot-extended disk) is accepted for an existing disk and does nothing.
* `true` (0), `false` (1), `sync` (flushes the VM's disks, 0), `sleep N[smhd]...` (interrupted by
  TerminateProcessInGuest), and `sh`/`bash -c "cmd args && cmd args; ..."` running those commands in
  order (`&&`, `||`, `;`, `exit N`; pipes and redirections exit 2).

Windows guests: `C:\\Windows\\System32\\cmd.exe /c exit N` (N), `/c echo ...` (0), other `/c` commands
exit 9009 as cmd's "is not recognized" does.

Every other program exits 127 (a shell's "command not found") — the simulator never shows a traceback.
A process killed by TerminateProcessInGuest (or a power-off) ends with 137 on Linux (128 + SIGKILL), 1
on Windows. What a program writes to stderr (dd's record counts or its error) is kept in the guest
file `/tmp/vmware-<program>-<pid>.err` (`C:\\Windows\\Temp\\...` on Windows), so a workload can
download it; the exit code alone is the result, as with real guest operations.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from conformance.sim.storage.space import DiskFullError

if TYPE_CHECKING:
    from conformance.sim.objects.guest_operations import ProgramRun

log = logging.getLogger("conformance.sim.guest")

#: largest file a guest program may write (a guard against `dd if=/dev/zero of=/tmp/x` filling the host)
GUEST_FILE_MAX = 4 << 30
PIECE = 4 << 20  # dd moves at most this many bytes at a time, whatever bs= says
CMD_EXE = "c:/windows/system32/cmd.exe"
_UNITS = {"": 1, "c": 1, "w": 2, "b": 512, "kB": 1000, "KB": 1000, "k": 1024, "K": 1024, "KiB": 1024}
for _i, _p in enumerate("MGTPE", start=2):
    _UNITS.update({f"{_p}B": 1000**_i, _p: 1024**_i, f"{_p}iB": 1024**_i})
CONV = {"notrunc", "fsync", "fdatasync", "sync", "sparse", "noerror", "nocreat", "excl"}
COMMON_FLAGS = {"direct", "dsync", "sync", "nocache", "noatime", "nonblock", "binary", "text"}
IFLAGS = COMMON_FLAGS | {"skip_bytes", "count_bytes", "fullblock"}
OFLAGS = COMMON_FLAGS | {"seek_bytes", "append"}
#: writing to a disk's sysfs rescan file makes a Linux guest see a grown disk (after a hot-extend)
RESCAN = re.compile(r"/sys/class/block/(sd[a-z]+)/device/rescan")


class ProcessKilledError(Exception):
    """The process was terminated (TerminateProcessInGuest, power-off, reboot)."""


class ShellExitError(Exception):
    """`exit N` inside `sh -c`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def dispatch(run_ctx: ProgramRun, program_path: str, arguments: str) -> int:
    """Route a program path to its simulation; 127 when the guest has no such program."""
    if run_ctx.fs.windows:
        if program_path.replace("\\", "/").lower() == CMD_EXE:
            return cmd_exe(run_ctx, arguments)
        return 127
    try:
        args = shlex.split(arguments or "")
    except ValueError as exc:
        run_ctx.stderr.append(f"{program_path}: {exc}")
        return 2
    program = LINUX_PROGRAMS.get(program_path)
    return program(run_ctx, args) if program is not None else 127


def cmd_exe(run_ctx: ProgramRun, arguments: str) -> int:
    words = (arguments or "").replace('"', " ").split()
    if not words or words[0].lower() not in ("/c", "/k"):
        return 0
    words = words[1:]
    if not words:
        return 0
    command = words[0].lower()
    if command == "exit":
        rest = [w for w in words[1:] if w.lower() != "/b"]
        return int(rest[0]) if rest and re.fullmatch(r"-?\d+", rest[0]) else 0
    if command in ("echo", "ver", "rem", "cd", "type", "dir"):
        return 0
    run_ctx.stderr.append(
        f"'{words[0]}' is not recognized as an internal or external command, operable program or batch file."
    )
    return 9009


def prog_sync(run_ctx: ProgramRun, args: list[str]) -> int:
    with run_ctx.vm.registry.lock:
        for disk in run_ctx.vm.disks:
            disk.file.flush()
    return 0


def prog_sleep(run_ctx: ProgramRun, args: list[str]) -> int:
    if not args:
        run_ctx.stderr.append("sleep: missing operand")
        return 1
    total = 0.0
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if not match:
            run_ctx.stderr.append(f"sleep: invalid time interval '{arg}'")
            return 1
        total += float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    deadline = time.monotonic() + total
    while (left := deadline - time.monotonic()) > 0:
        if run_ctx.process.cancel.wait(min(left, 0.2)):
            raise ProcessKilledError()
        run_ctx.check()
    return 0


def prog_sh(run_ctx: ProgramRun, args: list[str]) -> int:
    """`sh -c "a && b; c"`: simple commands of this program set joined by &&, || and ;."""
    if len(args) < 2 or args[0] != "-c":
        run_ctx.stderr.append('sh: only `sh -c "command"` is simulated')
        return 2
    lexer = shlex.shlex(args[1], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        run_ctx.stderr.append(f"sh: {exc}")
        return 2
    code, pending, op = 0, [], ";"
    try:
        for token in [*tokens, ";"]:
            if token not in ("&&", "||", ";"):
                if re.fullmatch(r"[|&<>()]+", token) or re.fullmatch(r"\d*[<>].*", token):
                    run_ctx.stderr.append(f"sh: {token!r} (pipes, redirections, jobs) is not simulated")
                    return 2
                pending.append(token)
                continue
            if pending and (op == ";" or (op == "&&") == (code == 0)):
                code = sh_command(run_ctx, pending)
            pending, op = [], token
    except ShellExitError as done:
        return done.code
    return code


def sh_command(run_ctx: ProgramRun, words: list[str]) -> int:
    name = words[0]
    if name == "exit":
        raise ShellExitError(int(words[1]) if len(words) > 1 and words[1].isdigit() else 0)
    if name == ":":
        return 0
    path = name if name.startswith("/") else f"/usr/bin/{name}"
    program = LINUX_PROGRAMS.get(path)
    if program is None:
        run_ctx.stderr.append(f"sh: 1: {name}: not found")
        return 127
    return program(run_ctx, words[1:])


# --- dd ---------------------------------------------------------------------------------------


class DdError(Exception):
    """dd stops with this message on stderr and exit code 1."""


def dd_size(text: str, positive: bool = False) -> int:
    """A dd number: digits with an optional unit suffix, or a product of those joined by `x`."""
    total = 1
    for factor in text.split("x"):
        match = re.fullmatch(r"(\d+)([A-Za-z]*)", factor)
        if not match or match.group(2) not in _UNITS:
            raise DdError(f"dd: invalid number: '{text}'")
        total *= int(match.group(1)) * _UNITS[match.group(2)]
    if positive and total <= 0:
        raise DdError(f"dd: invalid number: '{text}'")
    return total


def _flags(value: str, allowed: set[str], what: str) -> set[str]:
    flags = {f for f in value.split(",") if f}
    unknown = sorted(flags - allowed)
    if unknown:
        raise DdError(f"dd: invalid {what}: '{unknown[0]}'")
    return flags


def prog_dd(run_ctx: ProgramRun, args: list[str]) -> int:
    ops: dict[str, str] = {}
    stats = {"in_full": 0, "in_part": 0, "bytes": 0, "obs": 512}
    started = time.monotonic()
    try:
        for arg in args:
            key, sep, value = arg.partition("=")
            if not sep or key not in (
                "if",
                "of",
                "bs",
                "ibs",
                "obs",
                "count",
                "skip",
                "seek",
                "conv",
                "iflag",
                "oflag",
                "status",
            ):
                raise DdError(f"dd: unrecognized operand '{arg}'")
            ops[key] = value
        if ops.get("status", "default") not in ("default", "none", "noxfer", "progress"):
            raise DdError(f"dd: invalid status level: '{ops['status']}'")
        dd_copy(run_ctx, ops, stats)
        code = 0
    except DdError as exc:
        run_ctx.stderr.append(str(exc))
        code = 1
    status = ops.get("status", "default")
    if status != "none":
        out_full, out_part = divmod(stats["bytes"], stats["obs"])
        run_ctx.stderr += [
            f"{stats['in_full']}+{stats['in_part']} records in",
            f"{out_full}+{1 if out_part else 0} records out",
        ]
        if status != "noxfer":
            run_ctx.stderr.append(f"{stats['bytes']} bytes copied, {time.monotonic() - started:.6f} s")
    return code


def dd_copy(run_ctx: ProgramRun, ops: dict[str, str], stats: dict[str, int]) -> None:
    """Copy like dd: whole input blocks (moved in pieces of at most PIECE bytes) until count or end of input."""
    if "bs" in ops:
        ibs = obs = dd_size(ops["bs"], True)
    else:
        ibs, obs = dd_size(ops.get("ibs", "512"), True), dd_size(ops.get("obs", "512"), True)
    stats["obs"] = obs
    conv = _flags(ops.get("conv", ""), CONV, "conversion")
    iflag = _flags(ops.get("iflag", ""), IFLAGS, "input flag")
    oflag = _flags(ops.get("oflag", ""), OFLAGS, "output flag")
    skip = dd_size(ops.get("skip", "0")) * (1 if "skip_bytes" in iflag else ibs)
    seek = dd_size(ops.get("seek", "0")) * (1 if "seek_bytes" in oflag else obs)
    limit = None if "count" not in ops else dd_size(ops["count"]) * (1 if "count_bytes" in iflag else ibs)
    reader, close_input = open_input(run_ctx, ops.get("if"), skip)
    try:
        writer = open_output(run_ctx, ops.get("of"), seek, conv, oflag, stats)
        try:
            copied = 0
            while limit is None or copied < limit:
                block = ibs if limit is None else min(ibs, limit - copied)
                got = 0
                while got < block:
                    run_ctx.check()
                    data = reader(min(PIECE, block - got))
                    if not data:
                        break
                    got += len(data)
                    writer(data, "sparse" in conv)
                copied += got
                stats["in_full" if got == ibs else "in_part"] += 1 if got else 0
                if got and got < block and "sync" in conv:
                    writer(bytes(ibs - got), False)
                if got < block:
                    break
            writer(b"", False, bool({"fsync", "fdatasync"} & conv))
        finally:
            writer(None, False)
    finally:
        close_input()


Reader = Callable[[int], bytes]
Writer = Callable[..., None]


def open_input(run_ctx: ProgramRun, name: str | None, skip: int) -> tuple[Reader, Callable[[], None]]:
    """(read(n) -> bytes, empty at the end; close()) for dd's if= operand."""
    if name is None or name == "/dev/null":
        return (lambda n: b""), _nothing
    if name == "/dev/zero":
        return bytes, _nothing
    if name in ("/dev/urandom", "/dev/random"):
        return os.urandom, _nothing
    disk = run_ctx.disk(name)
    if disk is not None:
        position = [skip]

        def read_disk(n: int) -> bytes:
            with run_ctx.vm.registry.lock:
                start = position[0]
                n = max(0, min(n, disk.capacity - start))
                data = disk.file.read(start, n) if n else b""
            position[0] += len(data)
            return data

        return read_disk, _nothing
    if name.startswith("/dev/"):
        raise DdError(f"dd: failed to open '{name}': No such file or directory")
    path = guest_file(run_ctx, name)
    try:
        source: BinaryIO = path.open("rb")
    except OSError as exc:
        raise DdError(f"dd: failed to open '{name}': {exc.strerror}") from exc
    source.seek(skip)
    return source.read, source.close


def _nothing() -> None:
    return None


def open_output(
    run_ctx: ProgramRun, name: str | None, seek: int, conv: set[str], oflag: set[str], stats: dict[str, int]
) -> Writer:
    """writer(data, sparse, flush=False) for dd's of=; data None closes. Disks end at capacity, files at
    GUEST_FILE_MAX: what fits is written, then "No space left on device"."""
    if name is None or name == "/dev/null":
        return lambda data, sparse, flush=False: None
    rescan = RESCAN.fullmatch(name)
    if rescan is not None:  # the kernel rereads the disk's size; here the guest always sees the current one
        if run_ctx.disk(f"/dev/{rescan.group(1)}") is None:
            raise DdError(f"dd: failed to open '{name}': No such file or directory")
        return lambda data, sparse, flush=False: None
    disk = run_ctx.disk(name)
    if disk is None and name.startswith("/dev/"):
        raise DdError(f"dd: failed to open '{name}': No such file or directory")
    sink: BinaryIO | None = None
    if disk is None:
        sink, seek = open_file_output(run_ctx, name, seek, conv, oflag)
    capacity = disk.capacity if disk is not None else GUEST_FILE_MAX
    position = [seek]

    def write(data: bytes | None, sparse: bool, flush: bool = False) -> None:
        if data is None:
            if sink is not None:
                sink.close()
            return
        start = position[0]
        fits = data[: max(0, capacity - start)]
        if fits and not (sparse and fits.count(0) == len(fits)):
            put(start, fits)
        position[0] += len(fits)
        stats["bytes"] += len(fits)
        if len(fits) < len(data):
            raise DdError(f"dd: error writing '{name}': No space left on device")
        if flush and disk is not None:
            with run_ctx.vm.registry.lock:
                disk.file.flush()
        elif flush and sink is not None:
            sink.flush()
            os.fsync(sink.fileno())

    def put(offset: int, data: bytes) -> None:
        if disk is None:
            assert sink is not None
            sink.seek(offset)
            sink.write(data)
            return
        try:
            with run_ctx.vm.registry.lock:
                run_ctx.check()
                if disk not in run_ctx.vm.disks:
                    raise ValueError("the disk was removed from the VM")
                disk.write(offset, data)
        except (DiskFullError, ValueError) as exc:
            raise DdError(f"dd: error writing '{name}': Input/output error") from exc

    return write


def open_file_output(
    run_ctx: ProgramRun, name: str, seek: int, conv: set[str], oflag: set[str]
) -> tuple[BinaryIO, int]:
    """Open a guest file for dd's output as dd does: create, truncate at seek unless notrunc, append."""
    path = guest_file(run_ctx, name)
    if path.is_dir():
        raise DdError(f"dd: failed to open '{name}': Is a directory")
    exists = path.exists()
    if (not exists and "nocreat" in conv) or (exists and "excl" in conv):
        reason = "File exists" if exists else "No such file or directory"
        raise DdError(f"dd: failed to open '{name}': {reason}")
    try:
        sink: BinaryIO = path.open("r+b" if exists else "w+b")
    except OSError as exc:
        raise DdError(f"dd: failed to open '{name}': {exc.strerror}") from exc
    if "append" in oflag:
        seek = sink.seek(0, os.SEEK_END)
    elif "notrunc" not in conv:
        sink.truncate(seek)
    return sink, seek


def guest_file(run_ctx: ProgramRun, name: str) -> Path:
    try:
        return run_ctx.fs.host_path(name, run_ctx.cwd or "/")
    except ValueError as exc:
        raise DdError(f"dd: failed to open '{name}': No such file or directory") from exc


LINUX_PROGRAMS: dict[str, Callable[[ProgramRun, list[str]], int]] = {
    f"{folder}/{name}": func
    for name, func in {
        "dd": prog_dd,
        "true": lambda run_ctx, args: 0,
        "false": lambda run_ctx, args: 1,
        "sync": prog_sync,
        "sleep": prog_sleep,
        "sh": prog_sh,
        "bash": prog_sh,
    }.items()
    for folder in ("/bin", "/usr/bin")
}

__all__ = ["GUEST_FILE_MAX", "LINUX_PROGRAMS", "ProcessKilledError", "dd_size", "dispatch"]
