"""The secret scan every bundle passes before it is written: no password of the run, and no ``password=`` value.

Why refuse rather than redact: a bundle is evidence; silently editing a JUnit file or a trace would change what
the manifest vouches for. A problem names the file and the kind of secret, never the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["REDACTED", "scan_files"]

#: a password key followed by = or : and a value (quoted or bare), as in config files, URLs, JSON, YAML, logs
_ASSIGNMENT = re.compile(
    rb"""(?ix)
    (?<![a-z0-9_])(?:password|passwd|passphrase|pwd)["']?   # the key, maybe the end of a JSON/YAML quoted key
    \s*[=:]\s*
    (?:"(?P<dq>[^"\r\n]*)"|'(?P<sq>[^'\r\n]*)'|(?P<bare>[^\s"',;&<>)}\]]*))
    """
)
#: values that say "no secret here"
REDACTED = {"", "*", "***", "****", "********", "<redacted>", "redacted", "[redacted]", "<hidden>", "hidden", "none",
            "null", "~", "<password>", "xxx", "xxxx", "unset"}  # fmt: skip
_MIN_LITERAL = 4
#: code in a traceback that passes a password on (``password=password``, ``password=self.target.password``)
_CODE = re.compile(r"(?:[a-z_]\w*\.)*pass(?:word|wd)")


def _is_redacted(value: bytes) -> bool:
    """Redaction markers, placeholders ($VAR, {name}, %(name)s) and code that names a password variable."""
    text = value.decode("utf-8", "replace").strip().lower()
    return (
        text in REDACTED
        or set(text) == {"*"}
        or text.startswith(("$", "{", "%(", "<"))
        or _CODE.fullmatch(text) is not None
    )


def scan_files(files: Mapping[str, bytes], literals: Iterable[str] = ()) -> list[str]:
    """One line per file holding a known password (``literals``) or an unredacted ``password=`` value."""
    secrets = sorted({s.encode() for s in literals if len(s) >= _MIN_LITERAL}, key=len, reverse=True)
    problems: list[str] = []
    for name in sorted(files):
        data = files[name]
        if any(secret in data for secret in secrets):
            problems.append(f"{name}: contains a password of the run's target (refusing to pack it)")
            continue
        for match in _ASSIGNMENT.finditer(data):
            value = match.group("dq") if match.group("dq") is not None else match.group("sq")
            if value is None:
                value = match.group("bare") or b""
            if not _is_redacted(value):
                line = data.count(b"\n", 0, match.start()) + 1
                problems.append(f"{name}: line {line} sets a password value (refusing to pack it)")
                break
    return problems
