"""The detection plan (``conformance/data/detection_plan.toml``) as probes, checked against the catalog when loaded.

Each row is a probe: expectations of a build (and server) without the bug, behaviour of one with it (or a
deliberately wrong backup application). An item every build has (``assume_fixed``) has no build without the bug
to play for the baseline: its baseline runs with the simulator playing it fixed (``--sim-fixed``, the row's
``baseline_fixed``, default the item itself) while the probe plays the real build, bug included. The runs and
the verdicts are ``conformance.runs.detection``'s.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.catalog import CatalogError, load_catalog
from conformance.knowledge.versions import VddkBuild, VersionError

DEFAULT_BUILD, DEFAULT_VSPHERE = "7.0.3", "7.0U3"
_KEYS = {"expect", "vsphere", "behave", "sim_vsphere", "backup_app", "assume_fixed", "baseline_fixed", "select", "why",
         "sim_fault"}  # fmt: skip
_PROBE_KEYS = {"release_note", "backup_app", "select", "why"}
_FAULT_KEYS = {"select", "why"}
#: row-id prefix of a [faults.NAME] row: the whole default suites against a simulator playing that fault
FAULT_PREFIX = "FAULT-"
_APP_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*")


class DetectionError(InputError):
    """A broken detection plan; one line naming the row, the key and the fix."""


@dataclass(frozen=True)
class Probe:
    item: str
    why: str
    expect: str = DEFAULT_BUILD
    vsphere: str = DEFAULT_VSPHERE
    behave: str = DEFAULT_BUILD
    sim_vsphere: str = DEFAULT_VSPHERE
    backup_app: str | None = None
    assume_fixed: bool = False
    #: known issues the simulator plays fixed in this run (--sim-fixed); a probe keeps the bug, so only baselines
    sim_fixed: tuple[str, ...] = ()
    #: known issues the baseline plays fixed: the item itself for an assume_fixed row (no build lacks the bug)
    baseline_fixed: tuple[str, ...] = ()
    #: the row id when it is not the release-note id (probes of lying applications, e.g. APP-restores-nothing)
    probe_id: str | None = None
    #: a pytest -k expression narrowing the item's tests (probe and baseline alike), for items with many cases
    select: str | None = None
    #: integrity faults the simulator plays in the probe (--sim-fault); the baseline plays none
    sim_faults: tuple[str, ...] = ()

    @property
    def whole_run(self) -> bool:
        """A [faults.NAME] row: the default suites of every item, not one item's tests."""
        return not self.item

    @property
    def id(self) -> str:
        return self.probe_id or self.item

    def describe(self) -> tuple[str, str]:
        """(expectations, behaviour) as the table shows them."""
        expected = f"VDDK {self.expect}, vSphere {self.vsphere}" + (" (assumed fixed)" if self.assume_fixed else "")
        if self.baseline_fixed:
            expected += f"; baseline plays {','.join(self.baseline_fixed)} fixed"
        parts = [f"VDDK {self.behave}", f"vSphere {self.sim_vsphere}"]
        if self.sim_faults:
            parts.append(f"fault {','.join(self.sim_faults)}")
        if self.backup_app:
            parts.append(f"app {self.backup_app.rsplit(':', 1)[-1]}")
        return expected, ", ".join(parts)

    def baseline(self) -> Probe:
        """The same selection with behaviour agreeing with expectations and the reference application (and the
        known issues of `baseline_fixed` played fixed, as the expectations of an assume_fixed row say)."""
        return replace(
            self,
            behave=self.expect,
            sim_vsphere=self.vsphere,
            backup_app=None,
            probe_id=None,
            sim_fixed=self.baseline_fixed,
            baseline_fixed=(),
            sim_faults=(),
        )

    def run_arguments(self) -> list[str]:
        args = [f"--vddk-build={self.expect}", f"--vsphere={self.vsphere}"]
        if self.item:
            args.append(f"--release-note={self.item}")
        args += [f"--sim-behaviour={self.behave}", f"--sim-vsphere={self.sim_vsphere}"]
        if self.sim_faults:
            args.append(f"--sim-fault={','.join(self.sim_faults)}")
        if self.backup_app:
            args.append(f"--backup-app={self.backup_app}")
        if self.assume_fixed:
            args.append(f"--assume-fixed={self.item}")
        if self.sim_fixed:
            args.append(f"--sim-fixed={','.join(self.sim_fixed)}")
        if self.select:
            args += ["-k", self.select]
        return args


def select_probes(probes: list[Probe], items: str | None) -> list[Probe]:
    """The rows `--items` names (item or probe ids, any case), in plan order; all without it."""
    if not items:
        return probes
    wanted = [i.strip() for i in items.split(",") if i.strip()]
    known = {p.id.lower() for p in probes}
    unknown = [i for i in wanted if i.lower() not in known]
    if unknown:
        raise DetectionError(f"--items: unknown id(s) {', '.join(unknown)} (ids: {', '.join(p.id for p in probes)})")
    return [p for p in probes if p.id.lower() in {i.lower() for i in wanted}]


def load_plan(path: Path | None = None) -> list[Probe]:
    """Every catalog item's probe in catalog order, then the other probes in file order (validated)."""
    text = path.read_text() if path else resources.files("conformance.data").joinpath("detection_plan.toml").read_text()
    where = path.name if path else "detection_plan.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DetectionError(f"{where}: not valid TOML ({exc})") from None
    raw, extra, faults = (_tables(where, data, key) for key in ("items", "probes", "faults"))
    catalog = load_catalog()
    pending = data.get("pending", [])
    if not isinstance(pending, list) or not all(isinstance(i, str) and i in catalog.ids() for i in pending):
        raise DetectionError(f'{where}: pending: {pending!r} must list catalog ids (fix: e.g. pending = ["D1"])')
    covered = sorted(set(pending) & set(raw))
    if covered:
        raise DetectionError(f"{where}: pending lists {', '.join(covered)}, which have rows (fix: remove from pending)")
    missing = [i for i in catalog.ids() if i not in raw and i not in pending]
    if missing:
        raise DetectionError(f"{where}: no probe for {', '.join(missing)} (fix: add [items.ID] tables)")
    unknown = sorted(set(raw) - set(catalog.ids()))
    if unknown:
        raise DetectionError(f"{where}: unknown item(s) {', '.join(unknown)} (fix: use catalog ids)")
    probes = [_probe(f"{where}: items.{item_id}", item_id, raw[item_id]) for item_id in catalog.ids() if item_id in raw]
    for probe_id, table in extra.items():
        probes.append(_app_probe(f"{where}: probes.{probe_id}", probe_id, table))
    for name, table in faults.items():
        probes.append(_fault_probe(f"{where}: faults.{name}", name, table))
    _check_fault_rows(where, probes)
    return probes


def _fault_probe(at: str, name: str, table: Any) -> Probe:
    """A lying server (or library) against the whole default suites, expectations and behaviour those of 7.0.3."""
    if not isinstance(table, dict):
        raise DetectionError(f"{at}: not a table (fix: write [faults.{name}] with why = ...)")
    extra = sorted(set(table) - _FAULT_KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_FAULT_KEYS))})")
    if not str(table.get("why", "")).strip():
        raise DetectionError(f'{at}: missing why (fix: say what the suites must see, why = "...")')
    select = table.get("select")
    if select is not None and not (isinstance(select, str) and select.strip()):
        raise DetectionError(f'{at}: select must be a pytest -k expression (fix: e.g. select = "test_roundtrip")')
    return Probe(
        item="",
        why=str(table["why"]),
        probe_id=f"{FAULT_PREFIX}{name}",
        select=select,
        sim_faults=_sim_faults(at, name),
    )


def _sim_faults(at: str, value: Any) -> tuple[str, ...]:
    from conformance.knowledge.sim_faults import SimFaultError, check_faults

    if not isinstance(value, str) or not value.strip():
        raise DetectionError(f'{at}: sim_fault must name one fault (fix: e.g. sim_fault = "cbt-first-page-only")')
    try:
        return check_faults([value])
    except SimFaultError as exc:
        raise DetectionError(f"{at}: {exc}") from None


def _check_fault_rows(where: str, probes: list[Probe]) -> None:
    """Every fault of sim_faults.toml is played by exactly one row: a fault no row plays is a fault no test
    is known to catch."""
    from conformance.knowledge.sim_faults import FAULTS

    played = [name for p in probes for name in p.sim_faults]
    twice = sorted({n for n in played if played.count(n) > 1})
    if twice:
        raise DetectionError(f"{where}: fault(s) {', '.join(twice)} played by more than one row (fix: keep one)")
    unplayed = sorted(set(FAULTS) - set(played))
    if unplayed:
        raise DetectionError(
            f"{where}: no row plays {', '.join(unplayed)} (fix: add [faults.NAME] or an item row's sim_fault)"
        )


def _app_probe(at: str, probe_id: str, table: dict[str, Any]) -> Probe:
    """A lying backup application against one item's tests, expectations and behaviour those of 7.0.3."""
    extra = sorted(set(table) - _PROBE_KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_PROBE_KEYS))})")
    if probe_id.upper() in load_catalog().ids():
        raise DetectionError(f"{at}: a release-note id is not a probe id (fix: name it e.g. APP-{probe_id.lower()})")
    for key in ("release_note", "backup_app"):
        if not str(table.get(key, "")).strip():
            raise DetectionError(f'{at}: missing {key} (fix: {key} = "...")')
    item_id = str(table["release_note"])
    if item_id not in load_catalog().ids():
        raise DetectionError(f"{at}: release_note {item_id!r} is not a catalog id")
    keys: dict[str, Any] = {k: table[k] for k in ("backup_app", "why", "select") if k in table}
    return _probe(at, item_id, {"why": "", **keys}, probe_id)


def _tables(where: str, data: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """[key.ID] tables: a table of tables, each checked for the types of its keys."""
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise DetectionError(f"{where}: {key} must be [{key}.ID] tables (fix: write each row as such a table)")
    for row, table in value.items():
        for name, entry in table.items():
            wanted = bool if name == "assume_fixed" else list if name == "baseline_fixed" else str
            if not isinstance(entry, wanted):
                raise DetectionError(
                    f"{where}: {key}.{row}: {name} must be a {wanted.__name__}, not {type(entry).__name__}"
                )
    return value


def _probe(at: str, item_id: str, table: dict[str, Any], probe_id: str | None = None) -> Probe:
    extra = sorted(set(table) - _KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_KEYS))})")
    if not str(table.get("why", "")).strip():
        raise DetectionError(f'{at}: missing why (fix: say what the probe provokes, why = "...")')
    app = table.get("backup_app")
    if app is not None and not (isinstance(app, str) and _APP_SPEC.fullmatch(app)):
        raise DetectionError(f"{at}: backup_app {app!r} is not module:Class (fix: e.g. mypkg.mutants:LiesAboutX)")
    select = table.get("select")
    if select is not None and not (isinstance(select, str) and select.strip()):
        raise DetectionError(f'{at}: select must be a pytest -k expression (fix: e.g. select = "nbdssl-VMFS")')
    expect, vsphere = str(table.get("expect", DEFAULT_BUILD)), str(table.get("vsphere", DEFAULT_VSPHERE))
    assume_fixed = bool(table.get("assume_fixed", False))
    baseline_fixed = _baseline_fixed(at, table.get("baseline_fixed", [item_id] if assume_fixed else []))
    probe = Probe(
        item=item_id,
        why=str(table["why"]),
        expect=expect,
        vsphere=vsphere,
        behave=str(table.get("behave", expect)),
        sim_vsphere=str(table.get("sim_vsphere", vsphere)),
        backup_app=app,
        assume_fixed=assume_fixed,
        baseline_fixed=baseline_fixed,
        probe_id=probe_id,
        select=select,
        sim_faults=_sim_faults(at, table["sim_fault"]) if "sim_fault" in table else (),
    )
    if assume_fixed and item_id not in baseline_fixed:
        raise DetectionError(
            f"{at}: assume_fixed but the baseline keeps {item_id}: it would fail like the probe "
            f"(fix: list {item_id} in baseline_fixed, or drop baseline_fixed)"
        )
    unchanged = (probe.behave, probe.sim_vsphere, probe.backup_app) == (probe.expect, probe.vsphere, None)
    if unchanged and not probe.baseline_fixed and not probe.sim_faults:
        raise DetectionError(
            f"{at}: the probe changes nothing (fix: set behave, sim_vsphere, backup_app, sim_fault or baseline_fixed)"
        )
    item = load_catalog().get(item_id)
    platform = item.platforms[0] if item.platforms else "linux"
    try:
        VddkBuild.parse(probe.behave)
        verdict = load_catalog().expectation(item_id, probe.expect, probe.vsphere, platform=platform)
    except (CatalogError, VersionError) as exc:
        raise DetectionError(f"{at}: {exc}") from None
    wanted = "known_issue" if probe.assume_fixed else "pass"
    if verdict.outcome != wanted:
        raise DetectionError(
            f"{at}: expectations of VDDK {probe.expect} with {probe.vsphere} say {verdict.outcome}, not {wanted} "
            f"({verdict.reason}) (fix: pick a build without the bug, or assume_fixed for an issue of every build)"
        )
    return probe


def _baseline_fixed(at: str, value: Any) -> tuple[str, ...]:
    """The baseline's --sim-fixed ids: a list of known issues the simulated library has a switch for."""
    from conformance.knowledge.build_facts import unfixable

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DetectionError(f'{at}: baseline_fixed must be a list of ids (fix: e.g. baseline_fixed = ["K2"])')
    problem = unfixable(value)
    if problem:
        raise DetectionError(f"{at}: {problem} (fix: add it to [fixed] in vddk_builds.toml)")
    return tuple(value)
