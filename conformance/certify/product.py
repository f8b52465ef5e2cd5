"""The product description a partner certifies: backup application name, version and vendor (YAML).

Why strict: the description is printed on the verdict and archived in the bundle, so a typo in a field name or a
version YAML reads as a number ("2.10" becoming 2.1) must be caught before a long run, as one line naming the
field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.certify import CertifyError

__all__ = ["Product", "load_product", "parse_product"]

REQUIRED = ("name", "version", "vendor")
OPTIONAL = ("contact", "url", "description", "backup_app")


@dataclass(frozen=True)
class Product:
    """The backup application under certification."""

    name: str
    version: str
    vendor: str
    contact: str = ""
    url: str = ""
    description: str = ""
    #: module:Class the run drives, or a command-line product file (.toml); empty = the reference application
    backup_app: str = ""

    def label(self) -> str:
        return f"{self.vendor} {self.name} {self.version}"

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


def parse_product(text: str, origin: str, base: Path | None = None) -> Product:
    """Validate a product description's YAML text; ``origin`` prefixes every error; a relative product file
    (`backup_app: product.toml`) is taken from `base`, the description's folder."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise CertifyError(f"{origin}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise CertifyError(f"{origin}: must be a mapping with fields {', '.join(REQUIRED)}")
    unknown = sorted(str(k) for k in data if k not in REQUIRED + OPTIONAL)
    if unknown:
        raise CertifyError(f"{origin}: unknown field {unknown[0]!r} (fields: {', '.join(REQUIRED + OPTIONAL)})")
    values: dict[str, str] = {}
    for field in REQUIRED + OPTIONAL:
        if field not in data or data[field] is None:
            if field in REQUIRED:
                raise CertifyError(f"{origin}: field '{field}' is missing")
            continue
        value = data[field]
        if not isinstance(value, str):
            hint = " (quote the value in the file: YAML reads it as a number)" if isinstance(value, int | float) else ""
            raise CertifyError(f"{origin}: field '{field}' must be a string, not {type(value).__name__}{hint}")
        if not value.strip():
            raise CertifyError(f"{origin}: field '{field}' is empty")
        if "\n" in value.strip() and field != "description":
            raise CertifyError(f"{origin}: field '{field}' must be one line")
        values[field] = value.strip()
    backup_app = values.get("backup_app", "")
    if backup_app.endswith(".toml"):  # a command-line product file, relative to the product description
        if base is not None and not Path(backup_app).is_absolute():
            values["backup_app"] = str((base / backup_app).resolve())
        if not Path(values["backup_app"]).is_file():
            raise CertifyError(f"{origin}: field 'backup_app': product file {values['backup_app']} does not exist")
    elif backup_app and (backup_app.count(":") != 1 or not all(backup_app.split(":"))):
        raise CertifyError(
            f"{origin}: field 'backup_app' must be module:Class (e.g. mybackup.vddk:App) or a product file (.toml)"
        )
    return Product(**values)


def load_product(path: Path) -> Product:
    """Read and validate a PRODUCT.yaml file."""
    path = Path(path)
    if not path.is_file():
        raise CertifyError(f"--product {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CertifyError(f"--product {path}: not a UTF-8 text file") from None
    return parse_product(text, str(path), base=path.parent)
