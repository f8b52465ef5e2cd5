"""The integrity faults the simulator plays on demand (``--sim-fault``), as data: ``data/sim_faults.toml``.

Knowledge, like the [fixed] switches of vddk_builds.toml: what the simulator can play, read by the run settings
and the detection plan without importing the simulator (which plays them).

Why: a backup that reports success and restores other bytes is what partners fear most, and it comes from a
server (or library) that lies. Each fault is named, described and selectable per run like a build behaviour;
the detection matrix proves the default suites fail on every one. Unknown names are a one-line error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from conformance.input_errors import InputError

__all__ = ["FAULTS", "SimFault", "SimFaultError", "check_faults", "load_faults"]

Side = Literal["server", "library"]
_SIDES = ("server", "library")


class SimFaultError(InputError):
    """An unknown fault name or a broken sim_faults.toml; one line naming it and the fix."""


@dataclass(frozen=True)
class SimFault:
    name: str
    summary: str
    side: Side


@cache
def load_faults() -> dict[str, SimFault]:
    """Every fault of ``sim_faults.toml``, validated."""
    text = resources.files("conformance.data").joinpath("sim_faults.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SimFaultError(f"sim_faults.toml: not valid TOML ({exc})") from None
    faults: dict[str, SimFault] = {}
    for name, table in data.items():
        if not isinstance(table, dict) or not name.replace("-", "").isalnum() or name != name.lower():
            raise SimFaultError(f"sim_faults.toml: {name!r} is not a kebab-case [fault] table")
        extra = sorted(set(table) - {"summary", "side"})
        summary, side = table.get("summary"), table.get("side")
        if extra or not isinstance(summary, str) or not summary.strip() or side not in _SIDES:
            raise SimFaultError(
                f'sim_faults.toml: [{name}] needs summary = "..." and side = "server" or "library", nothing else'
            )
        faults[name] = SimFault(name, summary.strip(), side)
    return faults


FAULTS = load_faults()


def check_faults(names: Iterable[str]) -> tuple[str, ...]:
    """The names, each a known fault (in order, without repeats); otherwise a one-line SimFaultError."""
    wanted = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in FAULTS]
    if unknown:
        known = ", ".join(sorted(FAULTS)) or "none"
        raise SimFaultError(f"unknown simulator fault(s) {', '.join(unknown)} (fix: use one of {known})")
    return wanted
