"""Reading a bundle's members without extracting them and without holding big ones in memory.

Why: a bundle comes from outside. Members are read from the archive stream, never written to disk (a crafted
member path cannot land anywhere), every member is hashed in chunks for the manifest, and only the report files
verify-bundle parses are kept in memory, each up to a size no real report reaches: a 2 GiB member costs a
stream of hashing, not 2 GiB of memory.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from conformance.certify import CertifyError

__all__ = ["MAX_KEPT", "Members", "read_members", "report_member"]

#: the largest member verify-bundle parses (summary.json of a full nightly matrix is a few MB)
MAX_KEPT = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass
class Members:
    """The kept members' bytes, every member's sha256, and problems with unsafe, doubled or oversized ones."""

    files: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def report_member(name: str) -> bool:
    """The members verify-bundle parses: the run's reports and the bundle's own files."""
    if name.startswith("allure-results/"):
        return name.endswith("-result.json")
    return "/" not in name


#: the fixed part of a gzip member header (RFC 1952): magic, method, flags, mtime, xfl, os
GZIP_HEADER = 10


def read_members(path: Path, keep: Callable[[str], bool] = report_member, max_kept: int = MAX_KEPT) -> Members:
    """Stream the .tar.gz at `path`; CertifyError (one line) when it is not a readable .tar.gz."""
    path = Path(path)
    if not path.is_file():
        raise CertifyError(f"{path}: no such file")
    members = Members()
    with path.open("rb") as handle:
        header = handle.read(GZIP_HEADER)
    if len(header) < GZIP_HEADER or not header.startswith(b"\x1f\x8b\x08"):
        # checked here: tarfile's stream reader fails on a gzip header cut short with a TypeError of its own
        raise CertifyError(f"{path}: not a readable .tar.gz bundle (no complete gzip header)")
    try:
        with tarfile.open(path, "r|gz") as tar:  # a stream: members are visited once, in order
            for member in tar:
                _read_one(tar, member, members, keep, max_kept)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise CertifyError(f"{path}: not a readable .tar.gz bundle ({exc})") from None
    return members


def _read_one(
    tar: tarfile.TarFile, member: tarfile.TarInfo, members: Members, keep: Callable[[str], bool], max_kept: int
) -> None:
    name = member.name.removeprefix("./")
    pure = PurePosixPath(name)
    if member.isdir():
        return
    if not member.isfile() or pure.is_absolute() or ".." in pure.parts:
        members.problems.append(f"{member.name}: unsafe member (a link, device, absolute or '..' path)")
        return
    if name in members.digests:
        members.problems.append(f"{name}: appears twice in the bundle")
        return
    handle = tar.extractfile(member)
    digest = hashlib.sha256()
    kept = keep(name) and member.size <= max_kept
    if keep(name) and not kept:
        members.problems.append(f"{name}: {member.size} bytes, more than a report file can be ({max_kept} at most)")
    chunks: list[bytes] = []
    while handle is not None and (chunk := handle.read(_CHUNK)):
        digest.update(chunk)
        if kept:
            chunks.append(chunk)
    members.digests[name] = digest.hexdigest()
    if kept:
        members.files[name] = b"".join(chunks)
