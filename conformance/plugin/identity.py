"""Permanent test identities: what a certification result is keyed by, so that it survives refactors.

Every conformance test carries ``@pytest.mark.test_id(NAME, uuid=..., since=..., description=...)`` (Tempest's
idempotent ids, Kubernetes' conformance metadata): NAME is the short id profiles and people use ("RT-001"), the UUID
never changes once published, ``since`` is the conformance contract the test entered ("vddk-7.0.3-v1") and the
description one line. A parametrized test's cases are identified as UUID plus the case's parameter id
("nbd-VMFS-random-thin"); that pair, not the pytest node id, is what reports, `compare` and certification use. Renaming
a function, a file or a parameter name keeps the identity; changing the UUID or a case id is a visible diff of the
checked-in conformance list (conformance/data/certification/*.list.toml).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest

#: a conformance contract: "<profile id>-v<version>"
SINCE = re.compile(r"^[a-z0-9][a-z0-9.-]*-v\d+$")
NAME = re.compile(r"^[A-Z][A-Z0-9]*-\d{3}$")
DESCRIPTION_MAX = 120


class IdentityError(ValueError):
    """A test's identity marker is missing a field or holds a malformed one (one line naming the test)."""


@dataclass(frozen=True)
class PermanentId:
    name: str
    uuid: str
    since: str
    description: str

    def key(self, case: str) -> str:
        """The permanent key of one case: the UUID, and the parameter id when the test is parametrized."""
        return f"{self.uuid}[{case}]" if case else self.uuid


def identity_of(item: pytest.Item) -> PermanentId | None:
    """The item's identity, None when it has no ``test_id`` marker; IdentityError when the marker is malformed."""
    marker = item.get_closest_marker("test_id")
    if marker is None:
        return None
    where = item.nodeid
    name = str(marker.args[0]) if marker.args else ""
    if not NAME.match(name):
        raise IdentityError(f"{where}: test_id needs a name like 'RT-001' as its first argument, not {name!r}")
    fields = {key: marker.kwargs.get(key) for key in ("uuid", "since", "description")}
    missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise IdentityError(f"{where}: test_id {name} lacks {', '.join(missing)} (give uuid=, since=, description=)")
    text = str(fields["uuid"])
    try:
        canonical = str(uuid.UUID(text))
    except ValueError:
        canonical = ""
    if canonical != text:
        raise IdentityError(f"{where}: test_id {name}: uuid {text!r} is not a lowercase canonical UUID")
    if not SINCE.match(str(fields["since"])):
        raise IdentityError(
            f"{where}: test_id {name}: since {fields['since']!r} is not a contract like 'vddk-7.0.3-v1'"
        )
    description = str(fields["description"])
    if "\n" in description or len(description) > DESCRIPTION_MAX:
        raise IdentityError(f"{where}: test_id {name}: the description must be one line of at most 120 characters")
    return PermanentId(name, text, str(fields["since"]), description)


def case_of(item: pytest.Item) -> str:
    """The case's parameter id ("" for a test without parameters)."""
    callspec = getattr(item, "callspec", None)
    return str(callspec.id) if callspec is not None else ""


def record(items: list[pytest.Item]) -> None:
    """Put each test's identity into its report properties (JUnit properties, summary.json, Allure labels)."""
    for item in items:
        try:
            found = identity_of(item)
        except IdentityError as exc:
            raise pytest.UsageError(str(exc)) from None
        if found is None:
            continue
        item.user_properties.append(("test_name", found.name))
        item.user_properties.append(("test_uuid", found.uuid))
        item.user_properties.append(("test_case", case_of(item)))
