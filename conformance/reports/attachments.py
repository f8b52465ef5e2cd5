"""Allure attachments of a conformance test: its slice of the VixDiskLib call trace and the InitEx configuration.

Why: a failed test is diagnosed from the calls it made and the configuration the library ran with. The recorder
already redacts secrets in call arguments; this module scrubs again (any secret the target knows, and secret-named
configuration keys) because an attachment leaves the lab in certification bundles and CI artifacts.
The libraries are found among the test's fixture values: a VixDiskLib, an object with a ``lib`` attribute (the
sequence context), or a factory function whose closure holds the list of libraries it made.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conformance.vixdisklib.config import LINE
from conformance.vixdisklib.recorder import SECRET_KEYS, CallRecorder

REDACTED = "<redacted>"


def _recorder(value: Any) -> CallRecorder | None:
    recorder = getattr(value, "recorder", None)
    return recorder if isinstance(recorder, CallRecorder) else None


def libraries(values: Iterable[Any]) -> list[Any]:
    """Every distinct object with a CallRecorder reachable from the fixture values."""
    found: list[Any] = []
    for value in values:
        candidates = [value, getattr(value, "lib", None)]
        for cell in getattr(value, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(content, list):
                candidates.extend(content)
        for candidate in candidates:
            if _recorder(candidate) is not None and all(candidate is not seen for seen in found):
                found.append(candidate)
    return found


def marks(libs: Iterable[Any]) -> dict[int, int]:
    """id(library) -> the last call number recorded so far, so a test's own calls can be told apart later."""
    result: dict[int, int] = {}
    for lib in libs:
        recorder = _recorder(lib)
        if recorder is not None:
            records = recorder.records()
            result[id(lib)] = records[-1].seq if records else 0
    return result


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value (at least 4 characters long) by <redacted>."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def call_trace(libs: Iterable[Any], since: dict[int, int], secrets: Iterable[str] = ()) -> str | None:
    """JSON of the calls each library recorded after ``since`` (all of them for a library made during the test)."""
    sections = []
    for number, lib in enumerate(libs, start=1):
        recorder = _recorder(lib)
        if recorder is None:
            continue
        calls = [asdict(r) for r in recorder.records() if r.seq > since.get(id(lib), 0)]
        if calls:
            sections.append({"library": number, "calls": calls})
    if not sections:
        return None
    return scrub(json.dumps(sections, indent=1, default=str), list(secrets))


def sanitize_config(text: str, secrets: Iterable[str] = ()) -> str:
    """An InitEx configuration with the values of secret-named keys (password, token, key, ...) removed."""
    lines = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match and not line.lstrip().startswith("#") and any(s in match.group(1).lower() for s in SECRET_KEYS):
            line = f"{match.group(1)} = {REDACTED}"
        lines.append(line)
    return scrub("\n".join(lines) + "\n", list(secrets))


def init_configs(libs: Iterable[Any]) -> list[Path]:
    """The configuration files the libraries were initialised with (InitEx's configFile), existing ones only."""
    paths: list[Path] = []
    for lib in libs:
        recorder = _recorder(lib)
        for record in recorder.records() if recorder else ():
            config = record.args.get("configFile") if record.call == "VixDiskLib_InitEx" else None
            if isinstance(config, str) and Path(config).is_file() and Path(config) not in paths:
                paths.append(Path(config))
    return paths
