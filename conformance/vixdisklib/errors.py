"""VIX error codes and texts: the numbers are the C API's, so both backends raise the same typed errors."""

from __future__ import annotations

from enum import IntEnum


class VixCode(IntEnum):
    """The VIX error codes the harness meets (values from the VDDK headers; low 16 bits of a VixError)."""

    OK = 0
    FAIL = 1
    OUT_OF_MEMORY = 2
    INVALID_ARG = 3
    FILE_NOT_FOUND = 4
    OBJECT_IS_BUSY = 5
    NOT_SUPPORTED = 6
    FILE_ERROR = 7
    DISK_FULL = 8
    INCORRECT_FILE_TYPE = 9
    CANCELLED = 10
    FILE_READ_ONLY = 11
    FILE_ALREADY_EXISTS = 12
    FILE_ACCESS_ERROR = 13
    FILE_ALREADY_LOCKED = 15
    BUFFER_TOOSMALL = 24
    OBJECT_NOT_FOUND = 25
    HOST_NOT_CONNECTED = 26
    AUTHENTICATION_FAIL = 35
    HOST_CONNECTION_LOST = 36
    INVALID_HANDLE = 1000
    NOT_FOUND = 2000
    VM_NOT_FOUND = 4000
    SNAPSHOT_NOTFOUND = 13003
    HOST_SERVER_NOT_FOUND = 14008
    HOST_NETWORK_CONN_REFUSED = 14009
    HOST_TCP_SOCKET_ERROR = 14010
    HOST_TCP_CONN_LOST = 14011
    HOST_SERVER_SHUTDOWN = 14014
    HOST_SERVER_NOT_AVAILABLE = 14015
    DISK_INVAL = 16000
    DISK_NOINIT = 16001
    DISK_NOIO = 16002
    DISK_PARTIALCHAIN = 16003
    DISK_OUTOFRANGE = 16007
    DISK_OPENPARENT = 16012
    DISK_NOTSUPPORTED = 16013
    DISK_KEY_NOTFOUND = 16052
    DISK_INVALID_CONNECTION = 16054
    CANNOT_CONNECT_TO_HOST = 18000
    MNTAPI_MOUNTPT_NOT_FOUND = 24000
    MNTAPI_OPEN_HANDLES = 24015
    MNTAPI_INCOMPATIBLE_VERSION = 24300
    MNTAPI_OS_ERROR = 24301
    MNTAPI_NO_VOLUME = 24304
    #: vix.h's own name for 24304 (an alias: VixCode(24304).name stays MNTAPI_NO_VOLUME)
    MNTAPI_VOLUME_NOT_MOUNTED = 24304
    MNTAPI_VOLUME_ALREADY_MOUNTED = 24305
    MNTAPI_VOLUME_NOT_WRITABLE = 24322
    ASYNC = 25000
    NET_HTTP_COULDNT_CONNECT = 30007
    NET_HTTP_OPERATION_TIMEDOUT = 30028
    NET_HTTP_SSL_CONNECT_ERROR = 30035


#: Message texts, as VixDiskLib_GetErrorText gives them for the codes above (general gist; not localized).
TEXTS: dict[int, str] = {
    VixCode.OK: "The operation was successfully completed",
    VixCode.FAIL: "Unknown error",
    VixCode.OUT_OF_MEMORY: "Memory allocation failed. Out of memory",
    VixCode.INVALID_ARG: "One of the parameters was invalid",
    VixCode.FILE_NOT_FOUND: "A file was not found",
    VixCode.OBJECT_IS_BUSY: "This function cannot be performed because the handle is executing another function",
    VixCode.NOT_SUPPORTED: "The operation is not supported",
    VixCode.FILE_ERROR: "A file access error occurred on the host or guest operating system",
    VixCode.DISK_FULL: "An error occurred while writing a file; the disk is full. Data has not been saved. "
    "Free some disk space and try again",
    VixCode.INCORRECT_FILE_TYPE: "An error occurred while accessing a file: wrong file type",
    VixCode.CANCELLED: "The operation was canceled",
    VixCode.FILE_READ_ONLY: "The file is write-protected",
    VixCode.FILE_ALREADY_EXISTS: "The file already exists",
    VixCode.FILE_ACCESS_ERROR: "You do not have access rights to this file",
    VixCode.FILE_ALREADY_LOCKED: "The file is already in use",
    VixCode.BUFFER_TOOSMALL: "The buffer is too small",
    VixCode.OBJECT_NOT_FOUND: "The object was not found",
    VixCode.HOST_NOT_CONNECTED: "The host is not connected",
    VixCode.AUTHENTICATION_FAIL: "Authentication failed",
    VixCode.HOST_CONNECTION_LOST: "The connection to the host was lost",
    VixCode.INVALID_HANDLE: "The handle is not a valid VIX object",
    VixCode.NOT_FOUND: "The object was not found",
    VixCode.VM_NOT_FOUND: "The virtual machine cannot be found",
    VixCode.SNAPSHOT_NOTFOUND: "A snapshot with the given name was not found",
    VixCode.HOST_SERVER_NOT_FOUND: "Cannot connect to the host: server not found",
    VixCode.HOST_NETWORK_CONN_REFUSED: "The network connection to the host was refused",
    VixCode.HOST_TCP_SOCKET_ERROR: "TCP socket error on the connection to the host",
    VixCode.HOST_TCP_CONN_LOST: "The TCP connection to the host was lost",
    VixCode.HOST_SERVER_SHUTDOWN: "The host is shutting down or entering maintenance mode",
    VixCode.HOST_SERVER_NOT_AVAILABLE: "The host is not available: it is in maintenance mode",
    VixCode.DISK_INVAL: "One of the parameters supplied is invalid",
    VixCode.DISK_NOINIT: "The disk library has not been initialized",
    VixCode.DISK_NOIO: "The called function requires the virtual disk to be opened for I/O",
    VixCode.DISK_PARTIALCHAIN: "The called function cannot be performed on partial chains. Open the parent disk",
    VixCode.DISK_OUTOFRANGE: "The specified sector is out of range",
    VixCode.DISK_OPENPARENT: "Cannot open the parent disk",
    VixCode.DISK_NOTSUPPORTED: "The specified feature is not supported by this version",
    VixCode.DISK_KEY_NOTFOUND: "The given key was not found in the disk database",
    VixCode.DISK_INVALID_CONNECTION: "The connection is not valid",
    VixCode.CANNOT_CONNECT_TO_HOST: "Cannot connect to host",
    VixCode.MNTAPI_MOUNTPT_NOT_FOUND: "Could not find the mount point",
    VixCode.MNTAPI_OPEN_HANDLES: "There are open handles or mounted volumes",
    VixCode.MNTAPI_INCOMPATIBLE_VERSION: "The VixMntapi version is incompatible",
    VixCode.MNTAPI_OS_ERROR: "An error occurred in the operating system",
    VixCode.MNTAPI_NO_VOLUME: "No volume found to perform verification of reading files",
    VixCode.MNTAPI_VOLUME_ALREADY_MOUNTED: "The volume is already mounted",
    VixCode.MNTAPI_VOLUME_NOT_WRITABLE: "The volume is not writable",
    VixCode.ASYNC: "The asynchronous operation was queued",
    VixCode.NET_HTTP_COULDNT_CONNECT: "Failed to connect to host or proxy",
    VixCode.NET_HTTP_OPERATION_TIMEDOUT: "The operation timed out",
    VixCode.NET_HTTP_SSL_CONNECT_ERROR: "A problem occurred during the SSL handshake",
}


def error_code(raw: int) -> int:
    """The code of a raw VixError: its low 16 bits (higher bits may carry extra information)."""
    return raw & 0xFFFF


def error_text(code: int) -> str:
    return TEXTS.get(error_code(code), f"Unknown error code {error_code(code)}")


class VixError(Exception):
    """A failed VixDiskLib call: the VIX code number, its text, and which call failed."""

    def __init__(self, code: int, call: str = "", detail: str = "") -> None:
        self.code = error_code(code)
        self.raw = code
        self.call = call
        self.text = detail or error_text(code)
        try:
            self.name = VixCode(self.code).name
        except ValueError:
            self.name = f"code {self.code}"
        where = f"{call}: " if call else ""
        super().__init__(f"{where}VIX_E_{self.name} ({self.code}): {self.text}")

    def __reduce__(self) -> tuple[type[VixError], tuple[int, str, str]]:
        return (type(self), (self.raw, self.call, self.text))
