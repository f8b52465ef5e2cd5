"""Every file a user or a partner hands the harness, fuzzed: target files, product descriptions, inventories,
InitEx configurations, certification profiles, detection plans. Whatever the content, the answer is the value
or the input's own one-line error, never another exception (a traceback to the user)."""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.certify import CertifyError
from conformance.certify.product import parse_product
from conformance.certify.profile import parse_profile
from conformance.knowledge.detection_plan import DetectionError, load_plan
from conformance.lab.target_file import TargetFileError, load_target_file
from conformance.sim.inventory import InventoryError, load_inventory
from conformance.vixdisklib.config import ConfigFileError, parse_config
from tests.fuzz.strategies import damaged_text, mutated, without_none
from tests.lab.conftest import target_text

#: examples per input kind; a deeper campaign: VDDKC_FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz
FUZZ = settings(
    max_examples=int(os.environ.get("VDDKC_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TARGET = target_text({"host": "vc.example", "port": 443, "thumbprint": ":".join(["AB"] * 20), "user": "u",
                      "vsphere": "7.0U3"})  # fmt: skip
PRODUCT = {"name": "Acme Backup", "version": "2.10", "vendor": "Acme Corp", "contact": "qa@acme.example"}


def _data(name: str) -> str:
    return resources.files("conformance.data").joinpath(name).read_text()


def one_line_or_value(load: Callable[[Path], Any], text: str, errors: tuple[type[Exception], ...]) -> None:
    """Load `text` from a file: a value, or one of `errors` with a one-line message; nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load(path)
        except errors as exc:
            message = str(exc)
            assert message.strip() and "\n" not in message.strip(), message
            assert "Traceback" not in message


def _toml(doc: dict[str, Any]) -> str:
    return tomli_w.dumps(without_none(doc))


@FUZZ
@given(doc=mutated(tomllib.loads(TARGET)))
def test_target_files(doc: dict[str, Any]) -> None:
    one_line_or_value(load_target_file, _toml(doc), (TargetFileError,))


@FUZZ
@given(text=damaged_text(TARGET))
def test_target_files_damaged(text: str) -> None:
    one_line_or_value(load_target_file, text, (TargetFileError,))


@FUZZ
@given(doc=mutated(PRODUCT) | st.builds(dict), text=st.none() | damaged_text(yaml.safe_dump(PRODUCT)))
def test_product_descriptions(doc: dict[str, Any], text: str | None) -> None:
    body = text if text is not None else yaml.safe_dump(doc)
    one_line_or_value(lambda p: parse_product(p.read_text(), str(p)), body, (CertifyError,))


@FUZZ
@given(doc=mutated(tomllib.loads(_data("default_inventory.toml"))))
def test_simulator_inventories(doc: dict[str, Any]) -> None:
    one_line_or_value(load_inventory, _toml(doc), (InventoryError,))


@FUZZ
@given(text=damaged_text("tmpDirectory = /tmp/x\nvixDiskLib.nfcAio.Session.BufSizeIn64KB = 4\n"))
def test_initex_configurations(text: str) -> None:
    one_line_or_value(lambda p: parse_config(p.read_text(), str(p)), text, (ConfigFileError,))


@FUZZ
@given(doc=mutated(tomllib.loads(_data("certification/vddk-7.0.3-v2.toml"))))
def test_certification_profiles(doc: dict[str, Any]) -> None:
    one_line_or_value(lambda p: parse_profile(p.read_text(), "profile.toml"), _toml(doc), (CertifyError,))


@FUZZ
@given(doc=mutated(tomllib.loads(_data("detection_plan.toml"))))
def test_detection_plans(doc: dict[str, Any]) -> None:
    one_line_or_value(load_plan, _toml(doc), (DetectionError,))
