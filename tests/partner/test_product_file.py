"""A partner's product file: a good one loads; every bad one is one line naming the key and the fix; a product that
never loads the harness's library, hangs, or fails is reported in one line (never with the password)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.sequences.app import BackupAppError, load_backup_app
from conformance.sequences.command_app import CommandLineApp, ProductCommandError
from conformance.sequences.product import ProductFileError, load_product
from conformance.vixdisklib.recorder import CallRecorder

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "c-backup" / "product.toml"
PASSWORD = "Sekret-pw-0815"


def test_the_example_product_file_loads_and_fills_every_placeholder() -> None:
    product = load_product(EXAMPLE)
    assert product.name == "vddkc-sample" and set(product.commands) == {"full", "incremental", "restore"}
    values = {name: f"<{name}>" for name in ("here", "server", "port", "thumbprint", "user", "password_env",
                                             "vmx_spec", "snapshot", "transports", "disk", "image", "changed",
                                             "config", "libdir")}  # fmt: skip
    argv = product.command("incremental", values)
    assert "<changed>" in argv and not any("{" in part for part in argv)
    assert product.environment(values) == {"LD_LIBRARY_PATH": "<libdir>"}


def test_load_backup_app_takes_a_product_file() -> None:
    app = load_backup_app(str(EXAMPLE))
    assert isinstance(app, CommandLineApp) and app.name == "vddkc-sample"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n", "a [commands] table with full and restore is required"),
        ("[commands]\nfull = ['a']\n", "[commands] lacks restore"),
        ("[commands]\nfull = ['a', '{nope}']\nrestore = ['a']\n", "unknown placeholder {nope}"),
        ("[commands]\nfull = ['a {']\nrestore = ['a']\n", "write a literal brace as {{ or }}"),
        ("[commands]\nfull = 'a'\nrestore = ['a']\n", "[commands] full must be a non-empty list"),
        ("[commands]\nbackup = ['a']\n", "[commands] backup: unknown step"),
        ("images = 'opaque'\n[commands]\nfull = ['a']\nrestore = ['a']\n", "images = 'opaque' is not supported"),
        ("timeout = 0\n[commands]\nfull = ['a']\nrestore = ['a']\n", "timeout must be a number of seconds"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("[commands\n", "not valid TOML"),
        ("[env]\nX = 1\n[commands]\nfull = ['a']\nrestore = ['a']\n", "[env] X must be a string"),
    ],
)
def test_bad_product_files_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "product.toml"
    path.write_text(text)
    with pytest.raises(ProductFileError) as caught:
        load_product(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(BackupAppError):
        load_backup_app(str(path))


def fake_context(tmp_path: Path) -> Any:
    """What CommandLineApp._run reads of a sequence context, without a server."""
    backend = SimpleNamespace(name="native", libdir=tmp_path / "kit", build="7.0.3")
    lib = SimpleNamespace(backend=backend, recorder=CallRecorder(), config_file=None)
    endpoint = SimpleNamespace(host="127.0.0.1", port=443, thumbprint="AA:BB")
    target = SimpleNamespace(endpoint=endpoint, user="admin", password=PASSWORD)
    return SimpleNamespace(target=target, lib=lib, trace_dir=None)


def app_running(tmp_path: Path, script: str, timeout: int = 30) -> CommandLineApp:
    path = tmp_path / "product.toml"
    path.write_text(f"timeout = {timeout}\n[commands]\nfull = ['/bin/sh', '-c', '{script}']\nrestore = ['/bin/true']\n")
    return CommandLineApp(load_product(path))


@pytest.fixture(scope="module")
def shim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shim")


@pytest.fixture(autouse=True)
def use_shim_dir(shim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library folder the products get: one build for the module, not the user's cache."""
    monkeypatch.setenv("VDDKC_SHIM_LIBDIR", str(shim_dir))


def test_a_product_that_never_loads_the_library_is_told_where_it_is(tmp_path: Path) -> None:
    app = app_running(tmp_path, "exit 0")
    with pytest.raises(ProductCommandError) as caught:
        app._run(fake_context(tmp_path), "full", tmp_path, disk="[ds] d.vmdk")
    assert "made no VixDiskLib call through the harness's library" in str(caught.value)
    assert "LD_LIBRARY_PATH" in str(caught.value) and "\n" not in str(caught.value)


def test_a_failing_product_is_one_line_without_the_password(tmp_path: Path) -> None:
    script = f": > $VDDKC_TRACE; echo login as admin with {PASSWORD} failed >&2; exit 4"
    app = app_running(tmp_path, script)
    with pytest.raises(ProductCommandError) as caught:
        app._run(fake_context(tmp_path), "full", tmp_path, disk="[ds] d.vmdk")
    text = str(caught.value)
    assert "exited with 4" in text and PASSWORD not in text and "********" in text


def test_a_hanging_product_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    app = app_running(tmp_path, "sleep 60", timeout=1)
    started = time.monotonic()
    with pytest.raises(ProductCommandError) as caught:
        app._run(fake_context(tmp_path), "full", tmp_path, disk="[ds] d.vmdk")
    assert time.monotonic() - started < 10
    assert "did not finish within 1 s" in str(caught.value)


def test_the_password_reaches_the_product_only_through_its_environment(tmp_path: Path) -> None:
    script = ": > $VDDKC_TRACE; test $VDDKC_PRODUCT_PASSWORD = " + PASSWORD + " && echo {{}}"
    app = app_running(tmp_path, script)
    assert app._run(fake_context(tmp_path), "full", tmp_path, disk="[ds] d.vmdk") == {}
    # the example product is given the variable's name ({password_env}), never the value
    assert "{password_env}" in load_product(EXAMPLE).commands["full"]
