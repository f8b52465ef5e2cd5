"""The InitEx configuration file: parsing, the harness's own checks (F1, K5, K6) and writing it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.vixdisklib.config import (
    KEY_AIO_BUF_COUNT,
    KEY_AIO_BUF_SIZE,
    KEY_DATABASE_DIR,
    KEY_NO_NFC_SESSION,
    KEY_PHONE_HOME,
    KEY_PRODUCT_NAME,
    KEY_PRODUCT_VERSION,
    KEY_TMP_DIRECTORY,
    ConfigFileError,
    load_config,
    parse_config,
    render_config,
)

# --- parsing ---


@pytest.mark.parametrize(
    ("line", "value", "quoted"),
    [
        ("tmpDirectory = /var/tmp/vddk", "/var/tmp/vddk", False),
        ("tmpDirectory=/var/tmp/vddk", "/var/tmp/vddk", False),
        ('tmpDirectory = "/var/tmp/vddk"', "/var/tmp/vddk", True),
        ('tmpDirectory="/var/tmp/my vddk"', "/var/tmp/my vddk", True),
        ("   tmpDirectory   =   /var/tmp/vddk   ", "/var/tmp/vddk", False),
        ('tmpDirectory = ""', "", True),
        ("tmpDirectory =", "", False),
    ],
)
def test_quoted_and_unquoted_values(line: str, value: str, quoted: bool) -> None:
    config = parse_config(line + "\n")
    assert config.get(KEY_TMP_DIRECTORY) == value
    assert config.quoted[KEY_TMP_DIRECTORY] is quoted
    assert config.problems() == []


def test_comment_and_blank_lines_are_skipped_and_lines_keep_their_numbers() -> None:
    text = "# written by hand\n\n   # indented comment = not a key\ntmpDirectory = /t\n\t\n#x=1\n"
    text += "vixDiskLib.nfc.LogLevel = 2\n"
    config = parse_config(text)
    assert config.values == {KEY_TMP_DIRECTORY: "/t", "vixDiskLib.nfc.LogLevel": "2"}
    assert config.lines == {KEY_TMP_DIRECTORY: 4, "vixDiskLib.nfc.LogLevel": 7}
    assert config.problems() == []


@pytest.mark.parametrize(
    "spelling",
    [
        "vixDiskLib.nfcAio.Session.BufCount",
        "VixDiskLib.nfcAio.Session.BufCount",
        "VIXDISKLIB.NFCAIO.SESSION.BUFCOUNT",
        "vixdisklib.nfcaio.session.bufcount",
    ],
)
def test_keys_are_matched_case_insensitively(spelling: str) -> None:
    config = parse_config(f"{spelling} = 8\n")
    assert list(config.values) == [KEY_AIO_BUF_COUNT]  # stored under the canonical spelling
    assert config.get(KEY_AIO_BUF_COUNT) == config.get(spelling) == config.get(spelling.upper()) == "8"
    assert config.aio_buf_count == 8
    assert config.unknown_keys() == []


def test_unknown_keys_are_kept_and_listed_without_being_problems() -> None:
    config = parse_config("vixDiskLib.someFutureKey = 1\ntmpDirectory = /t\n")
    assert config.unknown_keys() == ["vixDiskLib.someFutureKey"]
    assert config.problems() == []


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("just some words", "not a 'name = value' line"),
        ("= 5", "not a 'name = value' line"),
        ('tmpDirectory = "/unterminated', "opening double quote without a closing one"),
        ('vixDiskLib.phoneHome.ProductName = "', "opening double quote without a closing one"),
    ],
)
def test_a_malformed_line_is_one_problem_with_its_line_number(bad_line: str, fragment: str) -> None:
    text = f"# header\nvixDiskLib.nfc.LogLevel = 1\n{bad_line}\nvixDiskLib.transport.LogLevel = 3\n"
    config = parse_config(text)
    [problem] = config.problems()
    assert problem.line == 3
    assert fragment in problem.message
    assert str(problem).startswith("line 3: ")
    # the lines around it are still read
    assert config.get("vixDiskLib.nfc.LogLevel") == "1"
    assert config.get("vixDiskLib.transport.LogLevel") == "3"


def test_several_problems_come_in_line_order() -> None:
    text = f"{KEY_AIO_BUF_COUNT} = 0\nnonsense\n{KEY_NO_NFC_SESSION} = 2\n"
    assert [p.line for p in parse_config(text).problems()] == [1, 2, 3]


# --- F1: NFC AIO buffers ---


@pytest.mark.parametrize("key", [KEY_AIO_BUF_SIZE, KEY_AIO_BUF_COUNT])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", '""'])
def test_f1_malformed_aio_values_are_rejected(key: str, value: str) -> None:
    [problem] = parse_config(f"# F1\n{key} = {value}\n").problems()
    assert (problem.line, problem.key) == (2, key)
    assert "whole number of at least 1" in problem.message


@pytest.mark.parametrize(
    ("size", "count", "session_bytes"),
    [(16, 16, 16 * 2**20), (1, 256, 16 * 2**20), (256, 1, 16 * 2**20), (16, 4, 4 * 2**20), (16, 17, 17 * 2**20)],
)
def test_f1_well_formed_aio_values_are_accepted(size: int, count: int, session_bytes: int) -> None:
    """The check only rejects malformed values: whether a session over 16 MiB opens depends on the build."""
    config = parse_config(f"{KEY_AIO_BUF_SIZE} = {size}\n{KEY_AIO_BUF_COUNT} = {count}\n")
    assert config.problems() == []
    assert (config.aio_buf_size_64k, config.aio_buf_count) == (size, count)
    assert config.aio_session_bytes == session_bytes


def test_f1_defaults_are_one_64k_buffer_times_four() -> None:
    config = parse_config("")
    assert (config.aio_buf_size_64k, config.aio_buf_count, config.aio_session_bytes) == (1, 4, 4 * 64 * 1024)


# --- K5: phone-home values ---


@pytest.mark.parametrize("key", [KEY_PRODUCT_NAME, KEY_PRODUCT_VERSION, KEY_DATABASE_DIR])
@pytest.mark.parametrize(
    "value",
    [
        *("AcmeBackup", "acme_backup-2.0", "7.0.3.1", '"Acme Backup Suite"', '"v 1.2_3-rc.4"', "A", '"  padded  "'),
        *("2021", "Acme_Backup-7.0.3", '"AcmeBackup"'),  # formerly suite K5-001
    ],
)
def test_k5_legal_phone_home_values_are_accepted(key: str, value: str) -> None:
    config = parse_config(f"{key} = {value}\n")
    assert config.problems() == []
    assert config.get(key) == value.strip('"')


@pytest.mark.parametrize("key", [KEY_PRODUCT_NAME, KEY_PRODUCT_VERSION, KEY_DATABASE_DIR])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("Acme/Backup", "illegal character"),
        ("Acme:Backup", "illegal character"),
        ('"Acme, Inc."', "illegal character"),
        ("Acme+", "illegal character"),
        ("Ácme", "illegal character"),
        ("Acme\tBackup", "illegal character"),
        ("Acme Backup", "needs double quotes"),
        ("v 1.0", "needs double quotes"),
        # formerly suite K5-002
        ("Acme&Co", "illegal character"),
        ("Acme's", "illegal character"),
        ('"Acme\tBackup"', "illegal character"),
        ('"Acme"Backup"', "illegal character"),
        ('"Acme Backup', "opening double quote without a closing one"),
    ],
)
def test_k5_illegal_phone_home_values_are_rejected(key: str, value: str, fragment: str) -> None:
    [problem] = parse_config(f"# K5\n{key} = {value}\n").problems()
    assert (problem.line, problem.key) == (2, key)
    assert fragment in problem.message


def test_k5_product_name_and_version_are_read() -> None:
    config = parse_config(f'{KEY_PRODUCT_NAME} = "Acme Backup"\n{KEY_PRODUCT_VERSION} = 2.1\n')
    assert (config.product_name, config.product_version) == ("Acme Backup", "2.1")
    assert parse_config("").product_name is None


# --- K6 and the other 0/1 switches ---


@pytest.mark.parametrize("key", [KEY_NO_NFC_SESSION, KEY_PHONE_HOME])
@pytest.mark.parametrize(("value", "accepted"), [("0", True), ("1", True), ("2", False), ("yes", False), ("-1", False)])
def test_k6_switches_take_0_or_1(key: str, value: str, accepted: bool) -> None:
    problems = parse_config(f"{key} = {value}\n").problems()
    if accepted:
        assert problems == []
    else:
        [problem] = problems
        assert (problem.line, problem.key) == (1, key)
        assert "must be 0 or 1" in problem.message


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("1", True), (None, False)])
def test_k6_no_nfc_session_flag(value: str | None, expected: bool) -> None:
    text = f"{KEY_NO_NFC_SESSION} = {value}\n" if value is not None else ""
    assert parse_config(text).no_nfc_session is expected


# --- writing ---


@pytest.mark.parametrize(
    "values",
    [
        {KEY_TMP_DIRECTORY: "/var/tmp/vddk"},
        {KEY_TMP_DIRECTORY: "/var/tmp/my vddk", KEY_PRODUCT_NAME: "Acme Backup", KEY_PRODUCT_VERSION: "1.0"},
        {KEY_AIO_BUF_SIZE: 16, KEY_AIO_BUF_COUNT: 4, KEY_NO_NFC_SESSION: 1},
        {"vixDiskLib.nfc.ReadTimeoutMs": 60000, "vixDiskLib.transport.san.blacklist": "/dev/sda,/dev/sdb"},
        {KEY_TMP_DIRECTORY: "#not-a-comment"},
        {KEY_TMP_DIRECTORY: ""},
    ],
)
def test_render_then_parse_round_trips(values: dict[str, str | int]) -> None:
    text = render_config(values)
    config = parse_config(text)
    assert config.values == {k: str(v) for k, v in values.items()}
    assert config.problems() == []
    assert text.startswith("#")  # the header comment


def test_render_quotes_exactly_the_values_with_a_space() -> None:
    lines = render_config({KEY_PRODUCT_NAME: "Acme Backup", KEY_PRODUCT_VERSION: "1.0"}).splitlines()
    assert lines[1:] == [f'{KEY_PRODUCT_NAME} = "Acme Backup"', f"{KEY_PRODUCT_VERSION} = 1.0"]


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "vddk.conf"
    path.write_text(render_config({KEY_TMP_DIRECTORY: str(tmp_path / "t")}))
    config = load_config(path)
    assert config.source == str(path)
    assert config.tmp_directory == tmp_path / "t"


def test_a_missing_file_is_a_config_file_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vddk.conf"
    with pytest.raises(ConfigFileError, match="does not exist") as caught:
        load_config(missing)
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_binary_file_is_a_config_file_error(tmp_path: Path) -> None:
    path = tmp_path / "vddk.conf"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigFileError, match="not text"):
        load_config(path)
