"""What a partner's product hands the harness, fuzzed: its command-line description (product.toml) and the call
traces its process writes. A product file is a product or its one-line error, and every command it describes
renders; a trace is read or refused in one line, and whatever is read is judged (rules, figures, the witness
comparison) without another exception: a product cannot crash the harness that judges it."""

from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conformance.sequences.product import PLACEHOLDERS, ProductFileError, load_product
from conformance.vixdisklib.shim.witness import Served, contradictions
from conformance.vixdisklib.trace import check_trace, foreign_records, summary
from conformance.vixdisklib.trace_format import TraceError, read_trace
from tests.fuzz.strategies import damaged_text, mutated
from tests.fuzz.test_user_inputs import FUZZ, _toml, one_line_or_value
from tests.vixdisklib.test_trace import correct_backup

EXAMPLE = Path(__file__).parents[2] / "examples" / "c-backup" / "product.toml"
VALUES = {name: f"<{name}>" for name in PLACEHOLDERS}
TRACE_LINES = correct_backup()[0]


def _product(path: Path) -> None:
    product = load_product(path)
    for step in product.commands:
        assert all(isinstance(part, str) for part in product.command(step, VALUES))
    assert all(isinstance(value, str) for value in product.environment(VALUES).values())


@FUZZ
@given(doc=mutated(tomllib.loads(EXAMPLE.read_text())))
def test_product_files(doc: dict[str, Any]) -> None:
    one_line_or_value(_product, _toml(doc), (ProductFileError,))


@FUZZ
@given(text=damaged_text(EXAMPLE.read_text()))
def test_product_files_damaged(text: str) -> None:
    one_line_or_value(_product, text, (ProductFileError,))


def _judged(path: Path) -> None:
    trace = read_trace(path)
    verdicts = summary(trace, check_trace(trace))
    json.dumps(verdicts)  # what the reports keep
    foreign_records(trace)
    served = [Served(100, 100, "VixDiskLib_Open", ("[ds] vm/vm.vmdk", "hotadd"), True)]
    assert all(isinstance(line, str) for line in contradictions(served, trace))


@st.composite
def damaged_traces(draw: st.DrawFn) -> str:
    """A correct backup's trace with lines mutated (keys dropped, wrong types, unknown keys), or the text damaged."""
    lines = [dict(line) for line in TRACE_LINES]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[at] = draw(mutated(lines[at]))
    text = "".join(json.dumps(line) + "\n" for line in lines)
    return draw(st.just(text) | damaged_text(text))


@FUZZ
@given(text=damaged_traces())
def test_product_traces(text: str) -> None:
    one_line_or_value(_judged, text, (TraceError,))


def test_the_example_and_a_correct_trace_are_accepted() -> None:
    """The fuzzed inputs start from valid ones: both load, so the cases above test damage, not a broken base."""
    _product(EXAMPLE)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in TRACE_LINES))
        _judged(path)
        assert len(read_trace(path).calls) == len(TRACE_LINES) - 1  # every call line (the first is the start)
