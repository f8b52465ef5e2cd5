"""A partner's backup product described by its command lines (a TOML file), for `--backup-app product.toml`.

Many partners do not write Python: their product is a C, C++ or Java program. The file says how to run its full
backup, incremental backup and restore of one disk, with placeholders the harness fills in; the harness does
the vSphere side a product's control plane would do (CBT, snapshot, changed areas, restore VM) and judges what
it sees itself: the bytes it reads back, the server's view, and the product's VixDiskLib call trace.

    name = "vddkc-sample"
    images = "raw"     # each disk's backup is a raw image of its capacity, which the harness may read
    timeout = 900      # seconds per command

    [env]              # added to every command's environment (placeholders allowed)
    LD_LIBRARY_PATH = "{libdir}"

    [commands]         # argv lists; "full" and "restore" are required, "incremental" and "cleanup" optional
    full = ["{here}/vddkc_sample", "full", "--server", "{server}", "--disk", "{disk}", "--image", "{image}"]

Placeholders (PLACEHOLDERS below): the server, its thumbprint and user, the name of the environment variable that
holds the password (never the password itself), the VM and snapshot, the transports, one disk and its image, the
changed areas of an incremental (a file of "offset length" lines, bytes), the library folder the product must
load (the simulated or the tracing libvixDiskLib) and the InitEx configuration file of the run.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from conformance.input_errors import InputError

PLACEHOLDERS = {
    "here": "the folder of the product file",
    "workdir": "a folder of this job for the product's files",
    "server": "the vCenter or ESXi host name",
    "port": "its HTTPS port",
    "thumbprint": "the SHA-1 thumbprint of its certificate",
    "user": "the user to log in as",
    "password_env": "the name of the environment variable holding the password",
    "vm_name": "the VM's name",
    "vm_moref": "the VM's managed object id (vm-N)",
    "vmx_spec": "moref=vm-N, for VixDiskLibConnectParams.vmxSpec",
    "snapshot": "the backup snapshot's managed object id (empty for a restore)",
    "transports": "colon-separated transport modes for ConnectEx",
    "disk": "the disk, [datastore] folder/name.vmdk",
    "disk_key": "the disk's device key",
    "capacity": "the disk's capacity in bytes",
    "image": "the backup image of the disk",
    "previous_image": "the previous backup's image (incremental)",
    "changed": "a file of the changed areas since the previous backup (incremental)",
    "libdir": "the folder holding the libvixDiskLib.so.N the product must load",
    "config": "the InitEx configuration file of the run",
}
REQUIRED = ("full", "restore")
OPTIONAL = ("incremental", "cleanup")
IMAGE_FORMATS = ("raw",)
#: what the harness sets in every command's environment: the password, under the name {password_env} gives
PASSWORD_VARIABLE = "VDDKC_PRODUCT_PASSWORD"


class ProductFileError(InputError):
    """A product file that cannot be used: the one-line message names the file, the key and the fix."""


@dataclass(frozen=True)
class Product:
    name: str
    path: Path
    commands: dict[str, list[str]]
    env: dict[str, str] = field(default_factory=dict)
    images: str = "raw"
    timeout: float = 900.0

    @property
    def here(self) -> Path:
        return self.path.parent

    def command(self, step: str, values: dict[str, str]) -> list[str]:
        """The argv of `step` with every placeholder filled in."""
        return [part.format_map(values) for part in self.commands[step]]

    def environment(self, values: dict[str, str]) -> dict[str, str]:
        return {key: value.format_map(values) for key, value in self.env.items()}


def _placeholders_in(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def _check_text(path: Path, where: str, text: object) -> str:
    if not isinstance(text, str):
        raise ProductFileError(f"{path}: {where} must be a string, not {type(text).__name__}")
    try:
        names = _placeholders_in(text)
    except ValueError as exc:
        raise ProductFileError(f"{path}: {where}: {exc} (write a literal brace as {{{{ or }}}})") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ProductFileError(
            f"{path}: {where}: unknown placeholder {{{unknown[0]}}} (known: {', '.join(sorted(PLACEHOLDERS))})"
        )
    return text


def load_product(path: Path) -> Product:
    """The product described by `path`; ProductFileError (one line) for anything wrong in it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProductFileError(f"cannot read product file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProductFileError(f"{path}: not valid TOML: {str(exc).splitlines()[0]}") from None
    known = {"name", "images", "timeout", "env", "commands"}
    extra = sorted(set(data) - known)
    if extra:
        raise ProductFileError(f"{path}: unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ProductFileError(f"{path}: name must be a non-empty string")
    images = data.get("images", "raw")
    if images not in IMAGE_FORMATS:
        raise ProductFileError(
            f'{path}: images = {images!r} is not supported; this harness reads raw images (images = "raw")'
        )
    timeout = data.get("timeout", 900)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        raise ProductFileError(f"{path}: timeout must be a number of seconds between 1 and 86400")
    commands_table = data.get("commands")
    if not isinstance(commands_table, dict):
        raise ProductFileError(f"{path}: a [commands] table with {' and '.join(REQUIRED)} is required")
    commands: dict[str, list[str]] = {}
    for step, argv in commands_table.items():
        if step not in REQUIRED + OPTIONAL:
            raise ProductFileError(f"{path}: [commands] {step}: unknown step (use {', '.join(REQUIRED + OPTIONAL)})")
        if not isinstance(argv, list) or not argv:
            raise ProductFileError(f"{path}: [commands] {step} must be a non-empty list of strings (an argv)")
        commands[step] = [_check_text(path, f"[commands] {step}", part) for part in argv]
    missing = [step for step in REQUIRED if step not in commands]
    if missing:
        raise ProductFileError(f"{path}: [commands] lacks {', '.join(missing)}")
    env_table = data.get("env", {})
    if not isinstance(env_table, dict):
        raise ProductFileError(f"{path}: [env] must be a table of strings")
    env = {str(key): _check_text(path, f"[env] {key}", value) for key, value in env_table.items()}
    return Product(name.strip(), path.resolve(), commands, env, images, float(timeout))
