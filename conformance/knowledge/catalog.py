"""The catalog: the 18 items of the VDDK 7.0.3 release notes, the field failures, and what a test of each must show.

Why: every suite links its tests to a release-note id and needs one answer, for the selected VDDK build, vSphere
version and proxy platform, to "must this test pass, is it a known issue, or does it not apply?". The facts live in
``conformance/data/release_notes.toml``; this module validates that file (each problem is a one-line
``CatalogError`` naming the item, the key and the fix) and owns the decision.

A conformance test always asserts the fixed, correct behaviour. ``expectation()`` decides, first rule that fires:

1. Unsupported pair. If VMware's policy (``versions.vddk_supports``) does not support the build with that vSphere,
   the test is ``not_applicable`` (the preflight refuses the pair) — except for server-side items (those with
   ``fixed_in_vsphere``: R6, which do not involve VDDK) and the support policy itself (C4).
2. Platform. An item with ``platforms`` that does not list the proxy platform gives ``other_platforms``: ``pass``
   where the issue simply does not arise there (R1 on Linux), ``not_applicable`` where the test means nothing (R3
   on Windows).
3. Scope. A build before ``applies_from`` (the call or behaviour did not exist yet) is ``not_applicable``; so is a
   workaround whose ``scope`` ("on-prem"/"vmc") excludes the server.
4. By kind:
   * feature: before ``introduced_in``, or on a server older than ``min_vsphere`` (new features are excepted on
     older servers), ``not_applicable``; otherwise ``pass``.
   * compatibility / resolved: on a build before ``fixed_in`` the test is ``known_issue`` (expected to fail,
     strictly: an unexpected pass means the simulator no longer reproduces the affected behaviour) — unless the fix
     was ``documentation_only``, where older builds behave the same and must pass. Server-side items compare the
     vSphere version with ``fixed_in_vsphere`` instead, whatever the VDDK build. C4 (``support_policy``) always
     passes: a supported pair must back up and restore, an unsupported one must be refused by the preflight.
   * known: the reproducer is ``known_issue`` when the build is in ``affected_builds`` and the server in
     ``affected_vsphere`` (default: every server), otherwise ``pass``. A workaround test passes in both cases:
     it must avoid the issue where it is present and must never hurt where it is not. A control case
     (``[[item.controls]]``, e.g. K1 on VMFS) is a case the notes place outside the issue: rules 1-3 apply, then
     it must pass.
   * field (ids D1..., ``field_failures.toml``): failures VDDK users meet in the field beyond the release notes (a
     backup that reports success and restores other bytes). No build is excused: ``pass`` on every supported pair.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from conformance.input_errors import InputError
from conformance.knowledge import versions
from conformance.knowledge.versions import VddkBuild, VersionError, VsphereVersion

__all__ = ["KINDS", "PLATFORMS", "Catalog", "CatalogError", "Expectation", "Outcome", "ReleaseNoteItem", "Workaround",
           "expectation", "load_catalog"]  # fmt: skip

Outcome = Literal["pass", "known_issue", "not_applicable"]
Kind = Literal["feature", "compatibility", "resolved", "known", "field"]

#: kind -> the release-notes section it belongs to.
KINDS: dict[str, str] = {
    "feature": "Changes and New Features",
    "compatibility": "Compatibility Notices",
    "resolved": "Recently Resolved Issues",
    "known": "Known Issues and Workarounds",
    "field": "Field Failures",
}
PLATFORMS = ("linux", "windows")
_ID_KIND = {"F": "feature", "C": "compatibility", "R": "resolved", "K": "known", "D": "field"}
_SCOPES = ("all", "on-prem", "vmc")
_REQUIRED = ("id", "section", "title", "kind", "summary", "anchor")
_OPTIONAL = ("note", "affected_behaviour", "applies_from", "platforms", "other_platforms")
_FIX_KEYS = ("fixed_in", "fixed_in_vsphere", "documentation_only", "support_policy")
_KNOWN_KEYS = ("affected_builds", "affected_vsphere", "workarounds", "controls")
_KIND_KEYS: dict[str, tuple[str, ...]] = {"feature": ("introduced_in", "min_vsphere"), "compatibility": _FIX_KEYS,
                                          "resolved": _FIX_KEYS, "known": _KNOWN_KEYS,
                                          "field": ("references",)}  # fmt: skip
_KIND_REQUIRED: dict[str, tuple[str, ...]] = {"feature": ("introduced_in",), "known": ("affected_builds",),
                                              "field": ("references",)}  # fmt: skip
_WORKAROUND_KEYS = ("id", "title", "scope", "note")
_TEXT = ("section", "title", "summary", "anchor", "note", "affected_behaviour")
DEFAULT_PATH = "release_notes.toml"
#: the field failures (D1...): what VDDK users meet in the field beyond the release notes, each with its public source
FIELD_PATH = "field_failures.toml"


class CatalogError(InputError):
    """A broken catalog file or an unknown id, workaround or platform; always one line that says how to fix it."""


@dataclass(frozen=True)
class Workaround:
    """A documented way around a known issue; its test must pass wherever the issue is present."""

    id: str
    title: str
    scope: str = "all"
    note: str = ""


@dataclass(frozen=True)
class ReleaseNoteItem:
    """One release-note item with the expectation data ``Catalog.expectation`` needs (see the module docstring)."""

    id: str
    section: str
    title: str
    kind: Kind
    summary: str
    anchor: str
    note: str = ""
    affected_behaviour: str = ""
    applies_from: VddkBuild | None = None
    platforms: tuple[str, ...] = ()
    other_platforms: Outcome = "pass"
    introduced_in: VddkBuild | None = None
    min_vsphere: VsphereVersion | None = None
    fixed_in: VddkBuild | None = None
    fixed_in_vsphere: VsphereVersion | None = None
    documentation_only: bool = False
    support_policy: bool = False
    affected_builds: tuple[VddkBuild, ...] = ()
    affected_vsphere: tuple[VsphereVersion, ...] = ()
    workarounds: tuple[Workaround, ...] = ()
    #: cases the notes place outside the issue (K1 on VMFS): their tests must pass on every build
    controls: tuple[Workaround, ...] = ()
    #: field failures: the public sources (threads, KB articles, guides) the case comes from
    references: tuple[str, ...] = ()

    @property
    def field_failure(self) -> bool:
        """A failure met in the field, not a release-note item: it must hold on every supported pair."""
        return self.kind == "field"

    @property
    def link_text(self) -> str:
        """What a report shows as the link to ``anchor``."""
        return f"{self.id}: {self.title}"

    @property
    def server_side(self) -> bool:
        """A fix made in vSphere, not in VDDK: the expectation ignores the VDDK build."""
        return self.fixed_in_vsphere is not None

    def workaround(self, workaround_id: str) -> Workaround:
        """The workaround with that id, or a CatalogError listing this item's workarounds."""
        for candidate in self.workarounds:
            if candidate.id == workaround_id:
                return candidate
        if not self.workarounds:
            raise CatalogError(f"{self.id} ({self.kind}) has no workarounds: pass workaround=None")
        known = ", ".join(w.id for w in self.workarounds)
        raise CatalogError(f"{self.id} has no workaround {workaround_id!r}: use one of {known}")

    def control(self, control_id: str) -> Workaround:
        """The control case with that id, or a CatalogError listing this item's control cases."""
        for candidate in self.controls:
            if candidate.id == control_id:
                return candidate
        known = ", ".join(c.id for c in self.controls) or "none"
        raise CatalogError(f"{self.id} has no control case {control_id!r}: use one of {known}")


@dataclass(frozen=True)
class Expectation:
    """What a test of an item must show for one selection, with the sentence the report prints."""

    item_id: str
    outcome: Outcome
    reason: str


class Catalog:
    """The validated catalog: items in file order, looked up by id, and the expectation decision."""

    def __init__(self, items: list[ReleaseNoteItem] | tuple[ReleaseNoteItem, ...], source: str = "") -> None:
        self._items = {item.id: item for item in items}
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        """Read and validate a catalog file (default: the packaged ``release_notes.toml`` followed by the field
        failures of ``field_failures.toml``; ``source`` stays the release notes')."""
        if path is not None:
            return cls.from_dict(_read(Path(path).read_text(encoding="utf-8"), Path(path).name), Path(path).name)
        package = resources.files("conformance.data")
        notes = cls.from_dict(_read(package.joinpath(DEFAULT_PATH).read_text(encoding="utf-8"), DEFAULT_PATH))
        field = cls.from_dict(_read(package.joinpath(FIELD_PATH).read_text(encoding="utf-8"), FIELD_PATH), FIELD_PATH)
        clash = set(notes.ids()) & set(field.ids())
        if clash:
            raise CatalogError(f"{FIELD_PATH}: id(s) {', '.join(sorted(clash))} also in {DEFAULT_PATH} (fix: rename)")
        return cls((*notes.items(), *field.items()), notes.source)

    def release_notes(self) -> tuple[ReleaseNoteItem, ...]:
        """The release-note items only (without the field failures)."""
        return tuple(item for item in self if not item.field_failure)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "catalog") -> Catalog:
        """Validate already-parsed TOML; every problem is a one-line CatalogError."""
        extra = sorted(set(data) - {"source", "item"})
        if extra:
            raise CatalogError(f"{origin}: unknown top-level key {extra[0]!r} (fix: use only 'source' and [[item]])")
        raw_items = data.get("item")
        if not isinstance(raw_items, list) or not raw_items:
            raise CatalogError(f"{origin}: no [[item]] tables (fix: add one [[item]] table per release-note item)")
        items: list[ReleaseNoteItem] = []
        seen: dict[str, int] = {}
        for position, raw in enumerate(raw_items, start=1):
            item = _parse_item(raw, f"{origin}: item #{position}", origin)
            if item.id in seen:
                raise CatalogError(
                    f"{origin}: item {item.id}: duplicate id (items #{seen[item.id]} and #{position}; "
                    "fix: give each release-note item one [[item]] table)"
                )
            seen[item.id] = position
            items.append(item)
        source = data.get("source", "")
        return cls(items, source if isinstance(source, str) else "")

    def items(self) -> tuple[ReleaseNoteItem, ...]:
        """Every item, in file order."""
        return tuple(self._items.values())

    def ids(self) -> tuple[str, ...]:
        """Every id, in file order."""
        return tuple(self._items)

    def get(self, item_id: str) -> ReleaseNoteItem:
        """The item with that id (case-insensitive), or a CatalogError listing the known ids."""
        item = self._items.get(item_id.strip().upper())
        if item is None:
            raise CatalogError(f"unknown release-note item {item_id!r}: use one of {', '.join(self._items)}")
        return item

    def __iter__(self) -> Iterator[ReleaseNoteItem]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and item_id.strip().upper() in self._items

    def expectation(self, item_id: str, vddk_build: str | VddkBuild, vsphere: str | VsphereVersion, *,
                    workaround: str | Workaround | None = None, platform: str = "linux",
                    control: str | None = None) -> Expectation:  # fmt: skip
        """Decide pass / known_issue / not_applicable for one selection (rules in the module docstring)."""
        item = self.get(item_id)
        build, server = VddkBuild.parse(vddk_build), VsphereVersion.parse(vsphere)
        if platform not in PLATFORMS:
            raise CatalogError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
        wid = workaround.id if isinstance(workaround, Workaround) else workaround
        chosen = None if wid is None else item.workaround(wid)
        case = None if control is None else item.control(control)
        if case is not None and chosen is not None:
            raise CatalogError(f"{item.id}: a test is a workaround or a control case, not both (fix: drop one)")
        outcome, reason = _decide(item, build, server, chosen, platform)
        if case is not None and outcome == "known_issue":
            outcome = "pass"
        if case is not None and outcome == "pass":
            reason = f"{item.id} control case {case.id} ({case.title}) is outside the issue: it must pass"
        return Expectation(item.id, outcome, reason)


def _read(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{origin}: not valid TOML: {exc} (fix: correct the syntax there)") from None


def _decide(
    item: ReleaseNoteItem, build: VddkBuild, server: VsphereVersion, chosen: Workaround | None, platform: str
) -> tuple[Outcome, str]:
    """Rules 1-3 of the module docstring, then the rule of the item's kind."""
    support = versions.vddk_supports(build, server)
    if not support and not item.server_side and not item.support_policy:
        return "not_applicable", f"{item.id} does not apply: {support.reason}, so the preflight refuses the pair"
    if item.platforms and platform not in item.platforms:
        where = " and ".join(item.platforms)
        if item.other_platforms == "pass":
            return "pass", f"{item.id} concerns {where} proxies only; on a {platform} proxy it must pass"
        return "not_applicable", f"{item.id} concerns {where} proxies only, not a {platform} proxy"
    if item.applies_from is not None and build < item.applies_from and not item.server_side:
        return "not_applicable", f"{item.id} applies from VDDK {item.applies_from}; {build} predates it"
    if chosen is not None and chosen.scope != "all" and (chosen.scope == "vmc") != server.is_vmc:
        return "not_applicable", f"{item.id} workaround {chosen.id} is for {chosen.scope} servers, not {server.label}"
    if item.kind == "feature":
        return _feature(item, build, server)
    if item.kind == "known":
        return _known(item, build, server, chosen)
    if item.field_failure:
        return "pass", f"{item.id} ({item.title}) must hold on every supported pair; VDDK {build} with {server.label}"
    if item.support_policy:
        duty = "a full backup and restore must succeed" if support else "the preflight must refuse the pair"
        return "pass", f"{item.id}: {support.reason}; {duty}"
    return _fixed(item, build, server)


def _feature(item: ReleaseNoteItem, build: VddkBuild, server: VsphereVersion) -> tuple[Outcome, str]:
    available = versions.feature_available(item, build, server)
    if available:
        return "pass", available.reason
    if item.introduced_in is not None and build < item.introduced_in and item.affected_behaviour:
        return "not_applicable", (
            f"{item.id} was introduced in VDDK {item.introduced_in}; {build} {item.affected_behaviour}"
        )
    return "not_applicable", available.reason


def _known(
    item: ReleaseNoteItem, build: VddkBuild, server: VsphereVersion, chosen: Workaround | None
) -> tuple[Outcome, str]:
    present = build in item.affected_builds and (not item.affected_vsphere or server in item.affected_vsphere)
    where = f"VDDK {build} with {server.label}"
    if chosen is not None and present:
        return "pass", f"workaround {chosen.id} ({chosen.title}) avoids {item.id} on {where}; it must pass"
    if chosen is not None:
        return "pass", f"{item.id} is not present on {where}; workaround {chosen.id} must not hurt, so it must pass"
    if present:
        behaviour = f": it {item.affected_behaviour}" if item.affected_behaviour else ""
        return "known_issue", f"{item.id} is a known issue of {where}{behaviour}"
    return "pass", f"{item.id} does not affect {where}; the reproducer must pass"


def _fixed(item: ReleaseNoteItem, build: VddkBuild, server: VsphereVersion) -> tuple[Outcome, str]:
    behaviour = item.affected_behaviour or "shows the affected behaviour"
    if item.fixed_in_vsphere is not None:
        fix = item.fixed_in_vsphere
        if server.at_least(fix):
            return "pass", f"{item.id} is fixed in {server.label} (since {fix}); the VDDK build does not matter"
        return "known_issue", (
            f"{item.id} was fixed in vSphere {fix} (server side, any VDDK build); {server.label} {behaviour}"
        )
    if item.fixed_in is not None and build < item.fixed_in:
        if item.documentation_only:
            return "pass", f"{item.id} was only documented in VDDK {item.fixed_in}; {build} behaves the same, must pass"
        return "known_issue", f"{item.id} was fixed in VDDK {item.fixed_in}; VDDK {build} {behaviour}"
    since = f" (since {item.fixed_in})" if item.fixed_in is not None else ""
    return "pass", f"{item.id} holds on VDDK {build} with {server.label}{since}"


def _parse_item(raw: object, where: str, origin: str) -> ReleaseNoteItem:
    """Check one [[item]] table key by key and build the dataclass."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: not a table (fix: write it as an [[item]] table)")
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not re.fullmatch(r"[FCRKD]\d+", item_id):
        raise CatalogError(f"{where}: id: {item_id!r} is not an id like F1, C2, R3, K4 or D1 (fix: set id)")
    at = f"{origin}: item {item_id}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise CatalogError(f"{at}: kind: {kind!r} is not a kind (fix: use one of {', '.join(KINDS)})")
    if _ID_KIND[item_id[0]] != kind:
        raise CatalogError(f"{at}: kind: {kind!r} does not fit the id (fix: use {_ID_KIND[item_id[0]]!r})")
    allowed = (*_REQUIRED, *_OPTIONAL, *_KIND_KEYS[kind])
    for key in raw:
        if key not in allowed:
            keys = ", ".join(allowed)
            raise CatalogError(f"{at}: unknown key {key!r} for kind {kind} (fix: remove it or use one of {keys})")
    for key in (*_REQUIRED, *_KIND_REQUIRED.get(kind, ())):
        if key not in raw:
            raise CatalogError(f"{at}: missing required key {key!r} (fix: add {key} = ... to the item)")
    fields: dict[str, Any] = {key: _string(raw, key, at) for key in _TEXT}
    if fields["section"] != KINDS[kind]:
        raise CatalogError(f"{at}: section: {fields['section']!r} is wrong for kind {kind} (fix: use {KINDS[kind]!r})")
    if not fields["anchor"].endswith(f"#{item_id}"):
        raise CatalogError(f"{at}: anchor: {fields['anchor']!r} must end with '#{item_id}' (fix: correct the anchor)")
    platforms = _strings(raw, "platforms", at)
    for name in platforms:
        if name not in PLATFORMS:
            raise CatalogError(f"{at}: platforms: unknown platform {name!r} (fix: use {', '.join(PLATFORMS)})")
    other = raw.get("other_platforms", "pass")
    if other not in ("pass", "not_applicable") or ("other_platforms" in raw and not platforms):
        raise CatalogError(f"{at}: other_platforms: {other!r} (fix: use 'pass' or 'not_applicable', with platforms)")
    for key in ("documentation_only", "support_policy"):
        fields[key] = raw.get(key, False)
        if not isinstance(fields[key], bool):
            raise CatalogError(f"{at}: {key}: expected true or false, got {fields[key]!r} (fix: write {key} = true)")
    for key in ("applies_from", "introduced_in", "fixed_in"):
        fields[key] = _version(raw, key, at, VddkBuild.parse)
    for key in ("min_vsphere", "fixed_in_vsphere"):
        fields[key] = _version(raw, key, at, VsphereVersion.parse)
    if fields["fixed_in"] is not None and fields["fixed_in_vsphere"] is not None:
        raise CatalogError(f"{at}: fixed_in_vsphere: set together with fixed_in (fix: keep only one of them)")
    if fields["documentation_only"] and fields["fixed_in"] is None:
        raise CatalogError(f"{at}: documentation_only: needs fixed_in (fix: add fixed_in or remove the flag)")
    if fields["support_policy"] and (fields["fixed_in"] or fields["fixed_in_vsphere"]):
        raise CatalogError(f"{at}: support_policy: cannot have a fix version (fix: remove fixed_in/fixed_in_vsphere)")
    return ReleaseNoteItem(
        id=item_id,
        kind=cast(Kind, kind),
        platforms=platforms,
        other_platforms=cast(Outcome, other),
        affected_builds=_selected(raw, "affected_builds", at, versions.match_builds),
        affected_vsphere=_selected(raw, "affected_vsphere", at, versions.match_vsphere),
        workarounds=_workarounds(raw, at),
        controls=_workarounds(raw, at, "controls"),
        references=_references(raw, at),
        **fields,
    )


def _references(raw: dict[str, Any], at: str) -> tuple[str, ...]:
    references = _strings(raw, "references", at)
    if "references" in raw and (not references or not all(r.strip() for r in references)):
        raise CatalogError(f'{at}: references: name at least one public source (fix: references = ["..."])')
    return references


def _string(raw: dict[str, Any], key: str, at: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (key in _REQUIRED and not value.strip()):
        raise CatalogError(f'{at}: {key}: expected a non-empty string, got {value!r} (fix: write {key} = "...")')
    return value


def _strings(raw: dict[str, Any], key: str, at: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f'{at}: {key}: expected a list of strings, got {value!r} (fix: write {key} = ["..."])')
    return tuple(value)


def _version(raw: dict[str, Any], key: str, at: str, parse: Callable[[str], Any]) -> Any:
    """A VDDK build or vSphere version named by ``key``, or None when the key is absent."""
    if key not in raw:
        return None
    try:
        return parse(_string(raw, key, at))
    except VersionError as exc:
        raise CatalogError(f"{at}: {key}: {exc}") from None


def _selected(raw: dict[str, Any], key: str, at: str, match: Callable[[str], tuple[Any, ...]]) -> tuple[Any, ...]:
    """Expand a list of selectors ('all', '6.7.x', '6.x', names) into sorted, distinct versions."""
    found: set[Any] = set()
    for selector in _strings(raw, key, at):
        try:
            found.update(match(selector))
        except VersionError as exc:
            raise CatalogError(f"{at}: {key}: {exc}") from None
    if key in raw and not found:
        raise CatalogError(f"{at}: {key}: empty list (fix: name at least one version, or 'all')")
    return tuple(sorted(found))


def _workarounds(raw: dict[str, Any], at: str, key: str = "workarounds") -> tuple[Workaround, ...]:
    """The [[item.workarounds]] (or [[item.controls]]) tables: kebab-case ids, titles, scopes."""
    tables = raw.get(key, [])
    if not isinstance(tables, list):
        raise CatalogError(f"{at}: {key}: expected [[item.{key}]] tables (fix: write them as such)")
    result: list[Workaround] = []
    for table in tables:
        wid = table.get("id") if isinstance(table, dict) else None
        if not isinstance(wid, str) or not re.fullmatch(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", wid):
            raise CatalogError(f'{at}: {key}: id {wid!r} is not kebab-case (fix: e.g. id = "proxy-on-vsan")')
        where = f"{at}: {key[:-1]} {wid}"
        for name in table:
            if name not in _WORKAROUND_KEYS:
                raise CatalogError(f"{where}: unknown key {name!r} (fix: use {', '.join(_WORKAROUND_KEYS)})")
        title, scope, note = table.get("title"), table.get("scope", "all"), table.get("note", "")
        if not isinstance(title, str) or not title.strip():
            raise CatalogError(f"{where}: missing required key 'title' (fix: add title = \"...\")")
        if scope not in _SCOPES:
            raise CatalogError(f"{where}: scope: {scope!r} (fix: use one of {', '.join(_SCOPES)})")
        if any(w.id == wid for w in result):
            raise CatalogError(f"{where}: duplicate {key[:-1]} id (fix: give each its own id)")
        result.append(Workaround(wid, title, scope, str(note)))
    return tuple(result)


@cache
def load_catalog() -> Catalog:
    """The packaged catalog, loaded and validated once per process."""
    return Catalog.load()


def expectation(item_id: str, vddk_build: str | VddkBuild, vsphere: str | VsphereVersion, *,
                workaround: str | Workaround | None = None, platform: str = "linux",
                control: str | None = None) -> Expectation:  # fmt: skip
    """``Catalog.expectation`` on the packaged catalog: what a test of ``item_id`` must show for this selection."""
    return load_catalog().expectation(
        item_id, vddk_build, vsphere, workaround=workaround, platform=platform, control=control
    )
