"""The product description: a good file parses; every bad one is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.certify import CertifyError
from conformance.certify.product import load_product, parse_product

GOOD = 'name: Acme Backup\nversion: "2.10"\nvendor: Acme Corp\nbackup_app: acme.vddk:App\n'


def test_a_good_description_parses() -> None:
    product = parse_product(GOOD, "p.yaml")
    assert (product.name, product.version, product.vendor, product.backup_app) == (
        "Acme Backup",
        "2.10",
        "Acme Corp",
        "acme.vddk:App",
    )
    assert product.label() == "Acme Corp Acme Backup 2.10"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: A\nversion: '1'\n", "field 'vendor' is missing"),
        ("name: A\nversion: 2.10\nvendor: V\n", "field 'version' must be a string, not float (quote the value"),
        ("name: A\nversion: '1'\nvendor: V\nvendr: X\n", "unknown field 'vendr'"),
        ("name: ''\nversion: '1'\nvendor: V\n", "field 'name' is empty"),
        ("- a\n- b\n", "must be a mapping with fields name, version, vendor"),
        ("name: A\nversion: '1'\nvendor: [V\n", "not valid YAML at line"),
        ("name: A\nversion: '1'\nvendor: V\nbackup_app: nocolon\n", "field 'backup_app' must be module:Class"),
    ],
)
def test_bad_descriptions_are_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(CertifyError) as caught:
        parse_product(text, "p.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CertifyError, match=r"--product .*nope\.yaml: no such file"):
        load_product(tmp_path / "nope.yaml")


def test_a_product_file_is_taken_relative_to_the_description(tmp_path: Path) -> None:
    (tmp_path / "c-product").mkdir()
    (tmp_path / "c-product" / "product.toml").write_text("name = 'c'\n")
    description = tmp_path / "product.yaml"
    description.write_text("name: C\nversion: '1'\nvendor: V\nbackup_app: c-product/product.toml\n")
    assert load_product(description).backup_app == str(tmp_path / "c-product" / "product.toml")


def test_a_missing_product_file_is_one_line(tmp_path: Path) -> None:
    description = tmp_path / "product.yaml"
    description.write_text("name: C\nversion: '1'\nvendor: V\nbackup_app: nowhere.toml\n")
    with pytest.raises(CertifyError) as caught:
        load_product(description)
    assert "product file" in str(caught.value) and "nowhere.toml does not exist" in str(caught.value)
    assert "\n" not in str(caught.value)
