"""VIX error codes and texts, the low-16-bit rule, and VixError (message, pickling)."""

from __future__ import annotations

import pickle

import pytest

from conformance.vixdisklib.errors import TEXTS, VixCode, VixError, error_code, error_text
from conformance.vixdisklib.simulated.library import CleanupError


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (VixCode.OK, 0),
        (VixCode.FAIL, 1),
        (VixCode.INVALID_ARG, 3),
        (VixCode.NOT_SUPPORTED, 6),
        (VixCode.DISK_FULL, 8),
        (VixCode.FILE_READ_ONLY, 11),
        (VixCode.FILE_ACCESS_ERROR, 13),
        (VixCode.BUFFER_TOOSMALL, 24),
        (VixCode.INVALID_HANDLE, 1000),
        (VixCode.HOST_SERVER_SHUTDOWN, 14014),
        (VixCode.HOST_SERVER_NOT_AVAILABLE, 14015),
        (VixCode.DISK_OUTOFRANGE, 16007),
        (VixCode.DISK_KEY_NOTFOUND, 16052),
        (VixCode.ASYNC, 25000),
    ],
)
def test_codes_have_the_c_api_numbers(code: VixCode, value: int) -> None:
    assert int(code) == value


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (VixCode.FAIL, "Unknown error"),
        (VixCode.INVALID_ARG, "One of the parameters was invalid"),
        (VixCode.FILE_ACCESS_ERROR, "You do not have access rights to this file"),
        (VixCode.MNTAPI_NO_VOLUME, "No volume found to perform verification of reading files"),
    ],
)
def test_texts_of_the_documented_codes(code: VixCode, text: str) -> None:
    assert error_text(code) == text


def test_disk_full_text_says_the_disk_is_full() -> None:
    assert "disk is full" in error_text(VixCode.DISK_FULL)


def test_every_code_has_a_text() -> None:
    assert set(VixCode) <= set(TEXTS)


def test_an_unknown_code_gets_a_text_naming_it() -> None:
    assert error_text(12345) == "Unknown error code 12345"


@pytest.mark.parametrize("high", [0, 1 << 16, 0xABCD << 16, 0xFFFF_FFFF_FFFF << 16])
@pytest.mark.parametrize("code", [VixCode.FAIL, VixCode.DISK_FULL, VixCode.HOST_SERVER_SHUTDOWN])
def test_the_code_is_the_low_16_bits(high: int, code: VixCode) -> None:
    raw = high | code
    assert error_code(raw) == code
    assert error_text(raw) == TEXTS[code]
    error = VixError(raw, "VixDiskLib_Open")
    assert error.code == code
    assert error.raw == raw
    assert error.name == code.name


def test_success_is_only_an_exact_zero() -> None:
    """VIX_SUCCEEDED(err) is err == VIX_OK: a value with high bits and a zero low half is still a failure."""
    raw = 7 << 16
    assert error_code(raw) == VixCode.OK
    assert raw != VixCode.OK


@pytest.mark.parametrize(
    ("call", "detail", "expected"),
    [
        ("VixDiskLib_Write", "", "VixDiskLib_Write: VIX_E_DISK_FULL (8): " + TEXTS[VixCode.DISK_FULL]),
        (
            "VixDiskLib_Write",
            "not enough space on datastore nfs-01",
            "VixDiskLib_Write: VIX_E_DISK_FULL (8): not enough",
        ),
        ("", "", "VIX_E_DISK_FULL (8): "),
    ],
)
def test_message_names_the_call_the_code_and_the_text(call: str, detail: str, expected: str) -> None:
    error = VixError(VixCode.DISK_FULL, call, detail)
    assert str(error).startswith(expected)
    assert error.call == call
    assert error.text == (detail or TEXTS[VixCode.DISK_FULL])


def test_message_of_an_unknown_code_carries_the_number() -> None:
    message = str(VixError(12345, "VixDiskLib_Open"))
    assert message.startswith("VixDiskLib_Open: ")
    assert "12345" in message and "Unknown error code 12345" in message


@pytest.mark.parametrize(
    "error",
    [
        VixError(VixCode.FAIL),
        VixError(VixCode.DISK_FULL, "VixDiskLib_Write", "not enough space"),
        VixError((3 << 40) | VixCode.HOST_SERVER_NOT_AVAILABLE, "VixDiskLib_Open"),
        VixError(12345, "VixDiskLib_Read"),
    ],
    ids=["bare", "with-detail", "high-bits", "unknown-code"],
)
def test_vix_error_survives_pickling(error: VixError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is VixError
    assert (copy.code, copy.raw, copy.call, copy.text, copy.name) == (
        error.code,
        error.raw,
        error.call,
        error.text,
        error.name,
    )
    assert str(copy) == str(error)


def test_cleanup_error_survives_pickling_with_its_counts() -> None:
    error = CleanupError(2, 1, "Could not unmount session-1: unmount.dat is missing")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CleanupError
    assert (copy.cleaned, copy.remaining) == (2, 1)
    assert (copy.code, copy.call, copy.text) == (VixCode.FAIL, "VixDiskLib_Cleanup", error.text)
    assert str(copy) == str(error)


def test_vix_error_is_an_exception_with_its_code() -> None:
    with pytest.raises(VixError) as caught:
        raise VixError(VixCode.INVALID_ARG, "VixDiskLib_QueryAllocatedBlocks")
    assert caught.value.code == 3
    assert isinstance(caught.value, Exception)
