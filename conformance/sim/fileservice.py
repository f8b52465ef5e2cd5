"""The HTTP file services: vCenter's `/folder/<path>?dcPath=<dc>&dsName=<datastore>` (GET, HEAD, PUT)
and the one-shot `/guestFile?id=<token>` URLs of guest file transfers (GuestTransfers, below).

Backup and migration tools move whole datastore files through /folder (.vmx, .nvram, logs, disk
extents), so it gives the answers vCenter gives:

* A logged-in session is required (the `vmware_soap_session` cookie of a SOAP login); 401 otherwise.
  HTTP Basic authentication, which some vCenter builds also accept, is not simulated.
* Names are percent-decoded once, or twice when `ctx.profile.http_double_decode` is set (vSphere 6.7 GA
  and U1, release-note item K6): on those releases a name whose encoding still holds a `%xx` after one
  decoding (a literal `%41` in a file name, sent as `%2541`) resolves to another file (`A`).
* Unknown datacenter or datastore and missing files are 404; paths that climb out of the datastore
  (`../`) are 400; writing over a disk that a VM or an FCD uses (or the .vmx of a running VM) is 409.
* PUT creates missing parent folders and answers 201 for a new file, 200 for a replaced one. Its bytes
  are charged to the datastore's simulated free space first: when they do not fit the answer is 507
  Insufficient Storage and nothing is written. Replacing a file charges or releases the difference.
* Bodies are streamed in 1 MiB chunks in both directions; a directory GET returns a small HTML index.
  DELETE is implemented (204) for when the server routes it; `FileService.forget(path)` gives an
  uploaded file's charge back for code that deletes datastore files by other means.
"""

from __future__ import annotations

import html
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext

log = logging.getLogger("conformance.sim.fileservice")

PREFIX = "/folder"
CHUNK = 1 << 20
#: an unwanted PUT body up to this size is read and dropped, so that a client which sends its whole body
#: before reading (most do) gets the error answer; a larger one closes the connection instead
DRAIN_LIMIT = 4 << 30
#: seconds a guest file transfer URL stays valid
TRANSFER_TTL = 600.0


class HttpError(Exception):
    """An answer other than success: status code and a one-line message for the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_name(raw: str, double: bool) -> str:
    """Percent-decode a URL component once, or twice on the K6 releases; bad UTF-8 is a 400."""
    try:
        text = unquote(raw, errors="strict")
        return unquote(text, errors="strict") if double else text
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"the name is not valid UTF-8 after decoding: {exc}") from exc


def content_length(handler: Any) -> int | None:
    """The request's Content-Length, None when absent; a malformed value is a 400."""
    raw = handler.headers.get("Content-Length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise HttpError(400, f"bad Content-Length {raw!r}")
    return int(raw)


def drain(handler: Any, length: int | None) -> None:
    """Consume an unwanted request body so keep-alive still works, or close the connection if it is big."""
    if length and length > DRAIN_LIMIT:
        handler.close_connection = True
        return
    remaining = length or 0
    while remaining:
        piece = handler.rfile.read(min(CHUNK, remaining))
        if not piece:
            handler.close_connection = True
            return
        remaining -= len(piece)


def copy_body(handler: Any, length: int, out: Any) -> None:
    """Stream exactly `length` request bytes into `out`; a short body raises ConnectionError."""
    remaining = length
    while remaining:
        piece = handler.rfile.read(min(CHUNK, remaining))
        if not piece:
            raise ConnectionError(f"the client sent {length - remaining} of {length} bytes")
        out.write(piece)
        remaining -= len(piece)


def send_file(handler: Any, path: Path, content_type: str = "application/octet-stream") -> None:
    """200 with the file's bytes, streamed (headers only for HEAD)."""
    with path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        shutil.copyfileobj(source, handler.wfile, CHUNK)


class FileService:
    """The /folder handler of one simulator; remembers what each uploaded file charged to its datastore."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._charged: dict[Path, int] = {}

    def handle(self, handler: Any, method: str) -> None:
        length = content_length_or_none(handler) if method == "PUT" else None
        try:
            if self.ctx.session_manager.session_for_cookie(handler._cookie()) is None:
                raise HttpError(401, "log in first: the file service needs a vmware_soap_session cookie")
            datastore, path, relative = self.resolve(handler.path)
            if method == "PUT":
                length = None  # from here on _put owns the body
                self._put(handler, datastore, path)
            elif method == "DELETE":
                self._delete(handler, datastore, path, relative)
            else:
                self._get(handler, path, relative)
        except HttpError as exc:
            drain(handler, length)
            handler.send_bytes(exc.status, f"{exc.message}\n".encode(), "text/plain; charset=utf-8")
        except Exception as exc:
            log.exception("file service error on %s %s", method, handler.path)
            handler.close_connection = True
            handler.send_bytes(500, f"simulator error: {exc}\n".encode(), "text/plain; charset=utf-8")

    # --- names ---

    def resolve(self, raw_url: str) -> tuple[Any, Path, str]:
        """(datastore, host path, decoded relative path) of a /folder URL."""
        parts = urlsplit(raw_url)
        tail = parts.path[len(PREFIX) :]
        if tail and not tail.startswith("/"):
            raise HttpError(404, f"no such service: {parts.path}")
        double = self.ctx.profile.http_double_decode
        relative = decode_name(tail, double).lstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        # parse_qs has decoded the query once; the K6 releases decode it a second time too
        dc_path, ds_name = (query.get(key, [""])[0] for key in ("dcPath", "dsName"))
        if double:
            dc_path, ds_name = decode_name(dc_path, False), decode_name(ds_name, False)
        datastore = self._datastore(dc_path, ds_name)
        if "\x00" in relative:
            raise HttpError(400, "the path contains a NUL character")
        root = datastore.path.resolve()
        path = (root / relative).resolve()
        if path != root and root not in path.parents:  # checked here: local_path's own fault is a TypeError
            raise HttpError(400, f"invalid datastore path {relative!r}: it leaves datastore {ds_name}")
        return datastore, datastore.local_path(relative), relative

    def _datastore(self, dc_path: str, ds_name: str) -> Any:
        from conformance.sim.objects.datacenter import DatacenterImpl

        if not dc_path:
            raise HttpError(404, "no datacenter given: add dcPath=<datacenter> to the query")
        datacenter = next(
            (
                dc
                for dc in self.ctx.registry.all(DatacenterImpl)
                if dc_path.strip("/") in (dc.inventory_path(), dc.name)
            ),
            None,
        )
        if datacenter is None:
            raise HttpError(404, f"datacenter {dc_path!r} not found")
        match = next((ds for ds in datacenter.datastores() if ds.name == ds_name), None)
        if match is None:
            raise HttpError(404, f"datastore {ds_name!r} not found in datacenter {datacenter.name!r}")
        return match

    # --- GET / HEAD ---

    def _get(self, handler: Any, path: Path, relative: str) -> None:
        if path.is_dir():
            handler.send_bytes(200, self._index(path, relative), "text/html; charset=utf-8")
            return
        if not path.is_file():
            raise HttpError(404, f"file {relative!r} not found")
        try:
            send_file(handler, path)
        except FileNotFoundError as exc:  # deleted between the check and the open
            raise HttpError(404, f"file {relative!r} not found") from exc

    @staticmethod
    def _index(path: Path, relative: str) -> bytes:
        """A directory listing like the browsable one of vCenter (names link to their URLs)."""
        rows = []
        for child in sorted(path.iterdir()):
            if child.name.startswith(".") and child.name.endswith(".upload"):
                continue
            name = child.name + ("/" if child.is_dir() else "")
            size = "" if child.is_dir() else str(child.stat().st_size)
            rows.append(f'<tr><td><a href="{quote(name)}">{html.escape(name)}</a></td><td>{size}</td></tr>')
        title = html.escape("/" + relative)
        return (
            f"<html><head><title>Index of {title}</title></head><body><h1>Index of {title}</h1>"
            f"<table><tr><th>Name</th><th>Size</th></tr>{''.join(rows)}</table></body></html>\n"
        ).encode()

    # --- PUT ---

    def _put(self, handler: Any, datastore: Any, path: Path) -> None:
        length = content_length(handler)
        if length is None:
            handler.close_connection = True
            raise HttpError(411, "Content-Length is required")
        try:
            self._check_writable(datastore, path)
        except HttpError:
            drain(handler, length)
            raise
        reserved = self._reserve(datastore, path, length, handler)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.upload")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as out:
                copy_body(handler, length, out)
            with self._lock:
                existed = path.exists()
                current = self._charged.get(path, 0) if existed else 0
                os.replace(tmp, path)
                self._charged[path] = length
            surplus = current + reserved - length
            if surplus > 0:
                datastore.space.release(surplus)
            elif surplus < 0:
                datastore.space.reserve(-surplus)
        except (ConnectionError, OSError) as exc:
            datastore.space.release(reserved)
            tmp.unlink(missing_ok=True)
            handler.close_connection = True
            if isinstance(exc, (ConnectionError, TimeoutError)):
                log.debug("upload of %s aborted: %s", path, exc)
                return
            raise HttpError(
                409 if isinstance(exc, (NotADirectoryError, FileExistsError)) else 500,
                f"cannot write {path.name}: {exc.strerror or exc}",
            ) from exc
        self.ctx.registry.changed()
        handler.send_bytes(200 if existed else 201, b"", "text/plain")

    def _delete(self, handler: Any, datastore: Any, path: Path, relative: str) -> None:
        """DELETE of one file (for a server that routes it): 204, and its charge goes back to the datastore."""
        if not path.is_file():
            raise HttpError(404, f"file {relative!r} not found")
        self._check_writable(datastore, path)
        path.unlink()
        self.forget(path)
        handler.send_bytes(204, b"", "text/plain")

    def forget(self, path: Path) -> None:
        """Give back what an uploaded file charged; for whatever deletes it (DELETE, FileManager, ...)."""
        with self._lock:
            charged = self._charged.pop(Path(path).resolve(), 0)
        if charged:
            self.ctx.datastore_of(Path(path)).space.release(charged)

    def _reserve(self, datastore: Any, path: Path, length: int, handler: Any) -> int:
        """Charge the growth of `path` to its datastore; 507 (nothing written) when it does not fit."""
        if not path.exists():
            self.forget(path)  # deleted behind our back: its old charge is free again
        with self._lock:
            previous = self._charged.get(path, 0) if path.exists() else 0
            need = max(0, length - previous)
            granted = datastore.space.reserve(need)
        if granted < need:
            datastore.space.release(granted)
            drain(handler, length)
            raise HttpError(
                507,
                f"Insufficient Storage: {length} bytes do not fit on datastore {datastore.name} "
                f"({datastore.space.free()} bytes free)",
            )
        return need

    def _check_writable(self, datastore: Any, path: Path) -> None:
        if path == datastore.path.resolve():
            raise HttpError(400, "a PUT needs a file name, not the datastore root")
        if path.is_dir():
            raise HttpError(409, f"{path.name} is a directory")
        if path in self._locked_files():
            raise HttpError(409, f"{path.name} is locked: a virtual machine or a First Class Disk is using it")

    def _locked_files(self) -> set[Path]:
        """Files the simulated ESXi holds open: every disk link of a VM or FCD, the .vmx of running VMs."""
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        locked: set[Path] = set()
        with self.ctx.registry.lock:
            for vm in self.ctx.registry.all(VirtualMachineImpl):
                for file in vm.files():
                    if file.suffix != ".vmx" or vm.power_state != "poweredOff":
                        locked.add(Path(file).resolve())
            for fcd in self.ctx.fcd_files():
                for link in fcd.chain():
                    locked.update(p.resolve() for p in link.files())
        return locked


def content_length_or_none(handler: Any) -> int | None:
    """Content-Length for draining on early errors; a malformed header counts as no body."""
    try:
        return content_length(handler)
    except HttpError:
        handler.close_connection = True
        return None


@dataclass
class Transfer:
    """One handed-out transfer URL: the host file behind it and whether its VM still allows it."""

    path: Path
    upload: bool
    overwrite: bool
    still_valid: Callable[[], bool]
    expires: float
    busy: bool = False


class GuestTransfers:
    """The /guestFile?id=<token> URLs of guest file transfers (see objects/guest_operations.py).

    As on ESXi the token is the credential (workloads PUT and GET these URLs without a session
    cookie); it expires after TRANSFER_TTL seconds, serves one request at a time and is spent by one
    successful transfer. Unknown, spent or expired tokens are answered 401.
    """

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._transfers: dict[str, Transfer] = {}

    def add(self, path: Path, upload: bool, overwrite: bool, still_valid: Callable[[], bool]) -> str:
        """A new one-shot URL for `path` (PUT when `upload`, else GET)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, t in self._transfers.items() if t.expires < now]:
                del self._transfers[key]
            self._transfers[token] = Transfer(path, upload, overwrite, still_valid, now + TRANSFER_TTL)
        host, port = getattr(self.ctx, "server_address", ("127.0.0.1", 0))[:2]
        return f"https://{host}:{port}/guestFile?id={token}"

    def handle(self, handler: Any, method: str) -> None:
        length = content_length_or_none(handler) if method == "PUT" else None
        token = parse_qs(urlsplit(handler.path).query).get("id", [""])[0]
        transfer, done = None, False
        try:
            transfer = self._claim(token, method, handler.command == "HEAD")
            if not transfer.still_valid():
                raise HttpError(503, "the virtual machine is no longer running: the transfer is aborted")
            if method == "PUT":
                length, done = None, self._upload(handler, transfer)
            elif not transfer.path.is_file():
                raise HttpError(404, "the guest file is gone")
            else:
                send_file(handler, transfer.path)
                done = handler.command != "HEAD"
        except HttpError as exc:
            drain(handler, length)
            handler.send_bytes(exc.status, f"{exc.message}\n".encode(), "text/plain; charset=utf-8")
        except OSError:
            handler.close_connection = True
        finally:
            with self._lock:
                if transfer is not None:
                    transfer.busy = False
                    if done:
                        self._transfers.pop(token, None)

    def _claim(self, token: str, method: str, head: bool) -> Transfer:
        with self._lock:
            transfer = self._transfers.get(token)
            if transfer is None or transfer.expires < time.monotonic():
                raise HttpError(401, "unknown, used or expired guest file transfer id")
            if transfer.upload != (method == "PUT"):
                raise HttpError(405, f"this URL is for {'PUT' if transfer.upload else 'GET'} requests")
            if transfer.busy:
                raise HttpError(409, "another request is using this transfer URL")
            transfer.busy = not head
            return transfer

    @staticmethod
    def _upload(handler: Any, transfer: Transfer) -> bool:
        length = content_length(handler)
        if length is None:
            handler.close_connection = True
            raise HttpError(411, "Content-Length is required")
        path = transfer.path
        if path.exists() and not transfer.overwrite:
            drain(handler, length)
            raise HttpError(409, "the guest file exists and overwrite was not requested")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.upload")
        try:
            with tmp.open("wb") as out:
                copy_body(handler, length, out)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        handler.send_bytes(200, b"", "text/plain")
        return True


def register(ctx: SimContext) -> None:
    """Install the file service on a simulator context (called by SimContext._optional_services)."""
    ctx.file_service = FileService(ctx)


__all__ = ["FileService", "GuestTransfers", "HttpError", "Transfer", "decode_name", "register", "send_file"]
