"""The conformance list of a certification profile: the contract, generated from the suites and checked in.

A profile names its tests by short name ("RT-001") and status. The list adds what a certification is measured by:
each test's permanent UUID, release-note item, contract version (`since`), description and the exact cases
(parameter ids) a certification run collects. It lives next to the profiles (`certification/lists/<profile>.toml`),
is regenerated with `vddk-conformance conformance-list --profile KEY --write`, and a harness test fails, printing
the diff, when the suites and the file disagree: a test removed, renamed to another UUID, or a case added or gone is
a visible change in review. `certify` packs the list into the bundle and `verify-bundle` requires every listed case
of a required test.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.certify.profile import CertifyError, Profile

LIST_FOLDER = "lists"
FORMAT = 1


@dataclass(frozen=True)
class ListedTest:
    uuid: str
    name: str
    status: str
    release_note: str
    since: str
    description: str
    cases: tuple[str, ...]


@dataclass(frozen=True)
class ConformanceList:
    profile: str
    vddk_build: str
    tests: tuple[ListedTest, ...]

    def test(self, name: str) -> ListedTest | None:
        return next((t for t in self.tests if t.name == name), None)


def regenerate_command(profile_key: str) -> str:
    return f"vddk-conformance conformance-list --profile {profile_key} --write"


def identity_problems(collected: list[dict[str, Any]]) -> list[str]:
    """Identities that cannot be permanent: a suite test without one, a UUID two names share, a name with two
    UUIDs."""
    problems = [
        f"{c['nodeid']}: a conformance test without a permanent id (test_id marker)"
        for c in collected
        if not c.get("uuid")
    ]
    names: dict[str, set[str]] = {}
    uuids: dict[str, set[str]] = {}
    for case in (c for c in collected if c.get("uuid")):
        names.setdefault(str(case["uuid"]), set()).add(str(case["name"]))
        uuids.setdefault(str(case["name"]), set()).add(str(case["uuid"]))
    problems += [f"uuid {u} is shared by {', '.join(sorted(n))}" for u, n in sorted(names.items()) if len(n) > 1]
    problems += [
        f"test {n} carries several uuids: {', '.join(sorted(u))}" for n, u in sorted(uuids.items()) if len(u) > 1
    ]
    return problems


def build_list(profile: Profile, collected: list[dict[str, Any]]) -> tuple[ConformanceList, list[str]]:
    """The list from collected cases ({"name", "uuid", "since", "description", "release_note", "case"}), and the
    names of profile tests no suite carries (left out of the list: the diff shows them gone)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for case in collected:
        if case.get("uuid"):
            by_name.setdefault(str(case["name"]), []).append(case)
    tests = []
    missing = []
    for test in profile.tests:
        cases = by_name.get(test.id)
        if not cases:
            missing.append(test.id)
            continue
        first = cases[0]
        tests.append(
            ListedTest(
                uuid=str(first["uuid"]),
                name=test.id,
                status=test.status,
                release_note=str(first.get("release_note") or ""),
                since=str(first["since"]),
                description=str(first["description"]),
                cases=tuple(sorted(str(c["case"]) for c in cases)),
            )
        )
    return ConformanceList(profile.key, profile.vddk_build, tuple(tests)), missing


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string for this text


def render(listed: ConformanceList) -> str:
    """The checked-in text: stable order and layout, so that a change is a small diff."""
    lines = [
        f"# Conformance list of certification profile {listed.profile}: generated from the suites, do not edit.",
        f"# Regenerate: {regenerate_command(listed.profile)}",
        "# Every change here changes what certification requires: review it like the profile itself.",
        "",
        "[list]",
        f"format = {FORMAT}",
        f"profile = {_string(listed.profile)}",
        f"vddk_build = {_string(listed.vddk_build)}",
    ]
    for test in listed.tests:
        lines += [
            "",
            "[[test]]",
            f"uuid = {_string(test.uuid)}",
            f"name = {_string(test.name)}",
            f"status = {_string(test.status)}",
            f"release_note = {_string(test.release_note)}",
            f"since = {_string(test.since)}",
            f"description = {_string(test.description)}",
            "cases = [" + ("" if not test.cases else "\n" + "".join(f"    {_string(c)},\n" for c in test.cases)) + "]",
        ]
    return "\n".join(lines) + "\n"


def parse(text: str, origin: str) -> ConformanceList:
    try:
        data = tomllib.loads(text)
        head = data["list"]
        tests = tuple(
            ListedTest(
                uuid=str(t["uuid"]),
                name=str(t["name"]),
                status=str(t["status"]),
                release_note=str(t["release_note"]),
                since=str(t["since"]),
                description=str(t["description"]),
                cases=tuple(str(c) for c in t["cases"]),
            )
            for t in data.get("test", [])
        )
        return ConformanceList(str(head["profile"]), str(head["vddk_build"]), tests)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CertifyError(f"{origin}: not a conformance list ({type(exc).__name__}: {exc})") from None


def packaged_text(profile_key: str) -> str | None:
    """The checked-in list of a packaged profile, None when it has none."""
    path = resources.files("conformance.data").joinpath("certification", LIST_FOLDER, f"{profile_key}.toml")
    return path.read_text(encoding="utf-8") if path.is_file() else None


def packaged_path(profile_key: str) -> Path:
    """Where the list of a packaged profile is checked in (the source tree's data folder)."""
    return Path(str(resources.files("conformance.data"))) / "certification" / LIST_FOLDER / f"{profile_key}.toml"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
