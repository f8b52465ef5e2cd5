"""The InitEx configuration file: parse it, check it, write it.

Syntax as VDDK reads it: one `name = value` per line, `#` comment lines, values optionally in double
quotes (mandatory when a value contains a space: release note K5). Keys are matched case-insensitively
(real configs spell `VixDiskLib.` and `vixDiskLib.` both). Unknown keys are kept and reported as notes,
because VDDK ignores them.

The harness's own check (`problems`) rejects malformed values before any connection is made: a zero,
negative or non-numeric NFC AIO setting (F1), a phone-home value with illegal characters or an unquoted
space (K5), a NoNfcSession that is not 0 or 1 (K6), and lines that are not `name = value`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from conformance.input_errors import InputError

KEY_TMP_DIRECTORY = "tmpDirectory"
KEY_AIO_BUF_SIZE = "vixDiskLib.nfcAio.Session.BufSizeIn64KB"
KEY_AIO_BUF_COUNT = "vixDiskLib.nfcAio.Session.BufCount"
KEY_NO_NFC_SESSION = "vixDiskLib.transport.hotadd.NoNfcSession"
KEY_PHONE_HOME = "vixDiskLib.phoneHome.EnablePhoneHome"
KEY_PRODUCT_NAME = "vixDiskLib.phoneHome.ProductName"
KEY_PRODUCT_VERSION = "vixDiskLib.phoneHome.ProductVersion"
KEY_DATABASE_DIR = "vixDiskLib.phoneHome.DatabaseDir"
NFC_TIMEOUT_KEYS = tuple(
    f"vixDiskLib.nfc.{k}" for k in ("AcceptTimeoutMs", "RequestTimeoutMs", "ReadTimeoutMs", "WriteTimeoutMs")
)
KNOWN_KEYS = (
    KEY_TMP_DIRECTORY,
    KEY_AIO_BUF_SIZE,
    KEY_AIO_BUF_COUNT,
    KEY_NO_NFC_SESSION,
    KEY_PHONE_HOME,
    KEY_PRODUCT_NAME,
    KEY_PRODUCT_VERSION,
    KEY_DATABASE_DIR,
    *NFC_TIMEOUT_KEYS,
    "vixDiskLib.transport.LogLevel",
    "vixDiskLib.nfc.LogLevel",
    "vixDiskLib.nfcFssrvr.TimeoutMs",
    "vixDiskLib.nfcFssrvrWrite.TimeoutMs",
    "vixDiskLib.ssl.enableSslFIPS",
    "vixDiskLib.transport.san.blacklist",
    "vixDiskLib.transport.san.whitelist",
    "vixDiskLib.linuxSSL.verifyCertificates",
    "log.fileName",
    "log.fileLevel",
)
CANONICAL = {k.lower(): k for k in KNOWN_KEYS}

AIO_DEFAULT_BUF_SIZE = 1  # x 64 KiB
AIO_DEFAULT_BUF_COUNT = 4
AIO_SESSION_LIMIT = 16 * 2**20  # bytes of buffer per session above which 7.0.3 fails Open
PHONE_HOME_VALUE = re.compile(r"^[A-Za-z0-9_.\- ]*$")
LINE = re.compile(r"^\s*([^=#\s][^=]*?)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class ConfigProblem:
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.key + ': ' if self.key else ''}{self.message}"


@dataclass
class VddkConfig:
    """A parsed configuration; `values` keyed by canonical key names, raw text values without quotes."""

    source: str = "<config>"
    values: dict[str, str] = field(default_factory=dict)
    quoted: dict[str, bool] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    syntax_problems: list[ConfigProblem] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        return self.values.get(CANONICAL.get(key.lower(), key))

    def int_value(self, key: str, default: int) -> int:
        raw = self.get(key)
        try:
            return int(raw) if raw is not None else default
        except ValueError:
            return default

    @property
    def tmp_directory(self) -> Path | None:
        raw = self.get(KEY_TMP_DIRECTORY)
        return Path(raw) if raw else None

    @property
    def aio_buf_size_64k(self) -> int:
        return self.int_value(KEY_AIO_BUF_SIZE, AIO_DEFAULT_BUF_SIZE)

    @property
    def aio_buf_count(self) -> int:
        return self.int_value(KEY_AIO_BUF_COUNT, AIO_DEFAULT_BUF_COUNT)

    @property
    def aio_session_bytes(self) -> int:
        return self.aio_buf_size_64k * 64 * 1024 * self.aio_buf_count

    @property
    def no_nfc_session(self) -> bool:
        return self.get(KEY_NO_NFC_SESSION) == "1"

    @property
    def enable_phone_home(self) -> bool:
        return self.get(KEY_PHONE_HOME) == "1"

    @property
    def product_name(self) -> str | None:
        return self.get(KEY_PRODUCT_NAME)

    @property
    def product_version(self) -> str | None:
        return self.get(KEY_PRODUCT_VERSION)

    def unknown_keys(self) -> list[str]:
        return [k for k in self.values if k.lower() not in CANONICAL]

    def problems(self) -> list[ConfigProblem]:
        """Everything the harness rejects, in line order."""
        found = list(self.syntax_problems)
        for key in (KEY_AIO_BUF_SIZE, KEY_AIO_BUF_COUNT):
            found += self._positive_int(key)
        for key in NFC_TIMEOUT_KEYS:
            found += self._non_negative_int(key)
        for key in (KEY_NO_NFC_SESSION, KEY_PHONE_HOME):
            raw = self.get(key)
            if raw is not None and raw not in ("0", "1"):
                found.append(ConfigProblem(self.lines[key], key, f"must be 0 or 1, got {raw!r}"))
        for key in (KEY_PRODUCT_NAME, KEY_PRODUCT_VERSION, KEY_DATABASE_DIR):
            found += self._phone_home_value(key)
        return sorted(found, key=lambda p: p.line)

    def _positive_int(self, key: str) -> list[ConfigProblem]:
        raw = self.get(key)
        if raw is None:
            return []
        if not re.fullmatch(r"[+-]?\d+", raw) or int(raw) <= 0:
            return [ConfigProblem(self.lines[key], key, f"must be a whole number of at least 1, got {raw!r}")]
        return []

    def _non_negative_int(self, key: str) -> list[ConfigProblem]:
        raw = self.get(key)
        if raw is not None and (not re.fullmatch(r"\d+", raw)):
            return [ConfigProblem(self.lines[key], key, f"must be milliseconds (a whole number >= 0), got {raw!r}")]
        return []

    def _phone_home_value(self, key: str) -> list[ConfigProblem]:
        raw = self.get(key)
        if raw is None:
            return []
        if not PHONE_HOME_VALUE.match(raw):
            bad = sorted({c for c in raw if not PHONE_HOME_VALUE.match(c)})
            return [
                ConfigProblem(
                    self.lines[key],
                    key,
                    f"illegal character(s) {''.join(bad)!r}: use letters, digits, underscore, minus, period and space",
                )
            ]
        if " " in raw and not self.quoted.get(key):
            return [ConfigProblem(self.lines[key], key, f'a value with a space needs double quotes: "{raw}"')]
        return []


def parse_config(text: str, source: str = "<config>") -> VddkConfig:
    config = VddkConfig(source=source)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            config.syntax_problems.append(ConfigProblem(number, "", f"not a 'name = value' line: {stripped!r}"))
            continue
        key = CANONICAL.get(match.group(1).lower(), match.group(1))
        raw = match.group(2)
        quoted = len(raw) >= 2 and raw[0] == raw[-1] == '"'
        if raw.startswith('"') and not quoted:
            config.syntax_problems.append(ConfigProblem(number, key, "opening double quote without a closing one"))
            continue
        config.values[key] = raw[1:-1] if quoted else raw
        config.quoted[key] = quoted
        config.lines[key] = number
    return config


def load_config(path: Path) -> VddkConfig:
    try:
        return parse_config(Path(path).read_text(), str(path))
    except FileNotFoundError as exc:
        raise ConfigFileError(f"InitEx configuration file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"InitEx configuration file {path} is not text") from exc


class ConfigFileError(InputError):
    """The configuration file cannot be read at all."""


def render_config(values: dict[str, str | int]) -> str:
    """Text of a configuration file; values with a space are quoted."""
    lines = ["# written by vddk-conformance"]
    for key, value in values.items():
        text = str(value)
        lines.append(f'{key} = "{text}"' if " " in text else f"{key} = {text}")
    return "\n".join(lines) + "\n"
