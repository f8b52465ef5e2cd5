"""The shim's agent: serves the simulated libvixDiskLib.so (C) over a Unix socket, one thread per product thread.

`python -m conformance.vixdisklib.shim.agent --socket PATH [--build 7.0.3] [--proxy-vm NAME]
[--physical-proxy NAME] [--sim-fixed K2,K4] [--sim-fault NAME,...] [--parent-pid PID] [--once]
[--witness FILE] [--log-level INFO]`

Why a process of its own: the product loads the C library, the library the suites judge is Python; each
product process gets a session (sessions.py) whose library behaves as the chosen build does in-process.
The agent's own log (stderr) never sees a password, cookie or key, and the product's log only gets what the
library logs on the thread serving the call, as VDDK's log callbacks would.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import secrets
import signal
import socket
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.versions import VddkBuild
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.shim import wire
from conformance.vixdisklib.shim.sessions import CALLS, SECRETS, ProductLibrary, Session, TmpStateGate
from conformance.vixdisklib.shim.wire import PARAMS_FIELDS, Op, Value, WireError
from conformance.vixdisklib.shim.witness import WitnessWriter
from conformance.vixdisklib.simulated.library import CleanupError

log = logging.getLogger("conformance.vixdisklib.shim.agent")
POLL = 0.5  # seconds between checks of the stop flag and the parent process

#: each op's arguments: u integer, s string or NULL, b bytes, P the 17 values of PARAMS
SIGNATURES: dict[Op, str] = {
    Op.HELLO: "uusu", Op.INIT: "uuss", Op.EXIT: "", Op.LIST_MODES: "", Op.CONNECT: "Puss", Op.DISCONNECT: "u",
    Op.OPEN: "usu", Op.CLOSE: "u", Op.GET_INFO: "u", Op.TRANSPORT: "u", Op.READ: "uuu", Op.WRITE: "uub",
    Op.READ_ASYNC: "uuu", Op.WRITE_ASYNC: "uub", Op.WAIT: "u", Op.FLUSH: "u", Op.QUERY_BLOCKS: "uuuu",
    Op.ATTACH: "uu", Op.PREPARE: "Ps", Op.END_ACCESS: "Ps", Op.CLEANUP: "P", Op.ERROR_TEXT: "u",
}  # fmt: skip
_INTEGER_PARAMS = {"credType", "port", "nfcHostPort", "specType", "privateUse", "paramsSize"}
_PARAMS = "".join("u" if field in _INTEGER_PARAMS else "s" for field in PARAMS_FIELDS)
_KINDS: dict[str, tuple[type, ...]] = {"u": (int,), "s": (str, type(None)), "b": (bytes,)}


def parse_request(values: list[Value]) -> tuple[Op | None, list[Any]]:
    """(op, arguments with PARAMS gathered in one dict); op None for an op this agent does not know.
    WireError when the values do not match the op's signature (a malformed frame)."""
    if not values or not isinstance(values[0], int):
        raise WireError("a shim request starts with its op number")
    try:
        op, rest = Op(values[0]), values[1:]
    except ValueError:
        return None, values
    types = SIGNATURES[op].replace("P", _PARAMS)
    if len(rest) != len(types):
        raise WireError(f"{op.name} takes {len(types)} values, the frame has {len(rest)}")
    for at, (kind, value) in enumerate(zip(types, rest, strict=True)):
        if not isinstance(value, _KINDS[kind]):
            raise WireError(f"{op.name}: value {at + 1} should be {kind!r}, not {type(value).__name__}")
    args: list[Any] = list(rest)
    if "P" in SIGNATURES[op]:
        at = SIGNATURES[op].index("P")
        args[at : at + len(PARAMS_FIELDS)] = [dict(zip(PARAMS_FIELDS, rest[at : at + len(PARAMS_FIELDS)], strict=True))]
    return op, args


def announcement(build: str) -> str:
    """The line VDDK logs at InitEx ("VMware VixDiskLib (7.0.3) Release build-18705167"), for the played build.
    The simulated library has no VMware build number; this one is made of the release (7.0.3 -> 7000300)."""
    b = VddkBuild.parse(build)
    number = f"{b.major}{b.minor:02d}{b.patch:02d}{b.ep:02d}"
    return f"I VMware VixDiskLib ({b.major}.{b.minor}.{b.patch}) Release build-{number}"


# --- logs ---


class _Capture(threading.local):
    lines: list[str] | None = None


_CAPTURE = _Capture()


class ProductLog(logging.Handler):
    """The library's records on the thread serving a call become that call's log lines (the product's log)."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _CAPTURE.lines
        if lines is None or record.name.startswith("conformance.vixdisklib.shim"):
            return  # another thread's, or the agent's own
        prefix = "W " if record.levelno >= logging.WARNING else "I "
        lines.append(prefix + SECRETS.mask(record.getMessage()).rstrip("\n"))


class MaskingFormatter(logging.Formatter):
    """The agent's own log, tracebacks included, with every secret the product handed over masked."""

    def format(self, record: logging.LogRecord) -> str:
        return SECRETS.mask(super().format(record))


def configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"))
    handler.setLevel(level)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(level)
    library = logging.getLogger("conformance.vixdisklib")
    library.setLevel(min(level, logging.INFO))  # the product's log gets INFO even when the agent's does not
    product = ProductLog(logging.INFO)
    library.addHandler(product)


# --- the agent ---


@dataclass(frozen=True)
class Options:
    socket: Path
    build: str = "7.0.3"
    proxy_vm: str | None = None
    physical_proxy: str | None = None
    fixed: tuple[str, ...] = ()
    sim_faults: tuple[str, ...] = ()
    parent_pid: int | None = None
    once: bool = False
    witness: Path | None = None  # where the calls served are recorded (witness.py), for the harness that started it

    def library(self, product_pid: int) -> ProductLibrary:
        """The library of one product process, built as `make_library` builds the simulated one."""
        return ProductLibrary(
            product_pid, self.build, proxy_vm=self.proxy_vm, physical_proxy=self.physical_proxy,
            fixed=self.fixed, sim_faults=self.sim_faults,
        )  # fmt: skip


class AgentError(Exception):
    """The agent cannot start (one line)."""


class Agent:
    """The listening socket, the sessions by token and the serving threads."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.stop = threading.Event()
        self.gate = TmpStateGate()
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._labels = itertools.count(1)
        self._open: set[socket.socket] = set()
        self._inode: int | None = None
        self.witness = WitnessWriter(options.witness) if options.witness is not None else None

    # --- sessions ---

    def hello(self, pid: int, tid: int, token: str | None, abi_major: int) -> Session:
        """Open a session (token NULL) or join one; the product's C library must be of the played major."""
        major = VddkBuild.parse(self.options.build).library_major
        if abi_major and abi_major != major:
            raise VixError(
                VixCode.NOT_SUPPORTED, CALLS[Op.HELLO],
                f"the C library has the ABI of libvixDiskLib.so.{abi_major}; VDDK {self.options.build} is .so.{major}",
            )  # fmt: skip
        with self._lock:
            if token is None:
                label = f"session-{next(self._labels)}"
                session = Session(secrets.token_hex(16), label, pid, self.options.library(pid), self.gate)
                self._sessions[session.token] = session
            elif (found := self._sessions.get(token)) is not None:
                session = found
            else:
                raise VixError(VixCode.INVALID_ARG, CALLS[Op.HELLO], "unknown session token (ended or never opened)")
            session.links += 1
        threading.current_thread().name = f"shim-{pid}-{tid}"
        log.info(
            "%s %s by pid %d thread %d: served by agent thread %s ident %d", session.label,
            "opened" if token is None else "joined", pid, tid, threading.current_thread().name, threading.get_ident(),
        )  # fmt: skip
        return session

    def leave(self, session: Session) -> None:
        """A connection closed; when it was the session's last and Exit never came, the product died."""
        with self._lock:
            session.links -= 1
            last = session.links == 0
            if last:
                self._sessions.pop(session.token, None)
        if last and not session.ended:
            log.warning("%s: every connection closed without Exit: dropped like a killed process", session.label)
            session.end()
            self._ended()

    def exited(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)
        log.info("%s: Exit", session.label)
        self._ended()

    def _ended(self) -> None:
        if self.options.once:
            self.stop.set()

    # --- one connection ---

    def serve(self, sock: socket.socket) -> None:
        session: Session | None = None
        who = (0, 0)  # the product's pid and thread, from its HELLO
        try:
            while not self.stop.is_set():
                try:
                    op, args = parse_request(wire.receive(sock))
                except (WireError, OSError) as exc:
                    log.info("%s: connection ends: %s", session.label if session else "no session", exc)
                    return
                if op == Op.HELLO and session is None:
                    try:
                        session = self.hello(*args)
                        who = (int(args[0]), int(args[1]))
                        reply = wire.response(VixCode.OK, None, [], [session.token])
                    except VixError as exc:
                        reply = wire.response(exc.raw, f"{exc.call}: {exc.text}", [], [])
                    except Exception as exc:
                        log.exception("HELLO failed")
                        reply = wire.response(VixCode.FAIL, f"{CALLS[Op.HELLO]}: {type(exc).__name__}", [], [])
                elif session is None or op in (None, Op.HELLO):
                    why = "say HELLO first" if session is None else "second HELLO" if op else f"unknown op {args[0]}"
                    reply = wire.response(VixCode.NOT_SUPPORTED, f"shim agent: {why}", [], [])
                else:
                    reply = self.answer(session, op, args)
                    if self.witness is not None:
                        self.witness.served(*who, CALLS[op], args, reply)
                wire.send(sock, reply)
                if op == Op.EXIT and session is not None and session.ended:
                    self.exited(session)
        except OSError as exc:
            log.info("%s: connection lost: %s", session.label if session else "no session", exc)
        finally:
            with self._lock:
                self._open.discard(sock)
            sock.close()
            if session is not None:
                self.leave(session)

    def answer(self, session: Session, op: Op, args: list[Any]) -> list[Value | wire.Bytes]:
        """The response to one call: its error and text, the library's log lines on this thread, its results."""
        call = CALLS[op]
        lines = [announcement(session.backend.build)] if op == Op.INIT else []
        error, text = 0, None
        failure: Exception | None = None
        results: list[Value | wire.Bytes] = []
        log.debug("%s %s", session.label, call)
        _CAPTURE.lines = lines
        try:
            results = session.call(op, args)
        except VixError as exc:
            error, text, failure = int(exc.raw), f"{exc.call or call}: {exc.text}", exc
        except Exception as exc:
            log.exception("%s %s failed", session.label, call)  # the traceback stays in the agent's log
            first = (str(exc).splitlines() or [""])[0][:200]
            error, text, failure = (
                VixCode.FAIL,
                f"{call}: the simulated library failed: {type(exc).__name__} {first}",
                exc,
            )
        finally:
            _CAPTURE.lines = None
        if op == Op.CLEANUP and failure is not None:  # the C API fills both counts on failure too
            results = [failure.cleaned, failure.remaining] if isinstance(failure, CleanupError) else [0, 0]
        return wire.response(error, SECRETS.mask(text) if text else None, lines, results)

    # --- the socket ---

    def _listen(self) -> socket.socket:
        path = self.options.socket
        if path.is_symlink() or path.exists():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise AgentError(f"{path} exists and is not a socket: not replacing it")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(str(path)) == 0:
                    raise AgentError(f"another agent listens on {path}")
            path.unlink()  # a stale socket of an agent that died
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: only the product's user may talk to the library
        try:
            listener.bind(str(path))
        except OSError as exc:
            listener.close()
            raise AgentError(f"cannot listen on {path}: {exc}") from None
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._inode = path.stat().st_ino
        listener.listen(64)
        listener.settimeout(POLL)
        return listener

    def run(self) -> int:
        listener = self._listen()
        log.info("listening on %s (VDDK %s)", self.options.socket, self.options.build)
        try:
            while not self.stop.is_set():
                if self.options.parent_pid is not None and not _alive(self.options.parent_pid):
                    log.info("parent process %d is gone: stopping", self.options.parent_pid)
                    break
                try:
                    sock, _ = listener.accept()
                except TimeoutError:
                    continue
                sock.setblocking(True)
                with self._lock:
                    self._open.add(sock)
                threading.Thread(target=self.serve, args=(sock,), name="shim-hello", daemon=True).start()
        finally:
            self.close(listener)
        return 0

    def close(self, listener: socket.socket) -> None:
        """Stop listening, remove our socket file (not another agent's), and hang up on every connection."""
        listener.close()
        if self.witness is not None:
            self.witness.close()
        path = self.options.socket
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == self._inode:
                path.unlink()
        parent = self.options.parent_pid
        if parent is not None and not _alive(parent) and self.options.witness is not None:
            with contextlib.suppress(OSError):  # the harness that would read the record is gone: so is the record
                self.options.witness.unlink()
        if parent is not None and path.parent.name.startswith((f"vddkc-shim-{parent}-", f"vddkc-agent-{parent}-")):
            with contextlib.suppress(OSError):  # a private folder (a product's, a harness's): gone with it, if empty
                path.parent.rmdir()
        with self._lock:
            remaining = list(self._open)
        for sock in remaining:
            with contextlib.suppress(OSError):  # already closed by its thread
                sock.shutdown(socket.SHUT_RDWR)
        log.info("stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except (OSError, IndexError):
        return True


def _names(values: list[str] | None) -> tuple[str, ...]:
    return tuple(name.strip() for value in values or [] for name in value.split(",") if name.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.vixdisklib.shim.agent", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to listen on (created 0600)")
    parser.add_argument("--build", default="7.0.3", help="the VDDK build the library plays")
    parser.add_argument("--proxy-vm", help="the VM the product runs in (HotAdd)")
    parser.add_argument("--physical-proxy", help="the physical proxy the product runs on (SAN)")
    parser.add_argument("--sim-fixed", action="append", help="known issues played fixed (K2,K4)")
    parser.add_argument("--sim-fault", action="append", help="integrity faults the library plays")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--once", action="store_true", help="exit when the first session ends")
    parser.add_argument("--witness", type=Path, help="record each call served here (JSON Lines, for the harness)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    configure_logging(getattr(logging, args.log_level))
    options = Options(
        args.socket, args.build, args.proxy_vm, args.physical_proxy,
        _names(args.sim_fixed), _names(args.sim_fault), args.parent_pid, args.once, args.witness,
    )  # fmt: skip
    agent = Agent(options)
    try:
        options.library(os.getpid())  # refuse a bad build, --sim-fixed or --sim-fault now, not at the first HELLO
        signal.signal(signal.SIGTERM, _stopper(agent))
        signal.signal(signal.SIGINT, _stopper(agent))
        return agent.run()
    except (InputError, AgentError) as exc:
        print(f"shim agent: {exc}", file=sys.stderr)
        return 2


def _stopper(agent: Agent) -> Any:
    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop.set()

    return stop


if __name__ == "__main__":
    sys.exit(main())
